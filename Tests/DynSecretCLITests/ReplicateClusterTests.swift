import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// `replicate --once` and cluster `--dry-run` against the in-process emulator, counting writes with its counters.
@Suite(.serialized, .heavy) struct ReplicateClusterTests {
    static let token = "replicate-admin-token"
    static let readerToken = "replicate-reader-token"
    static let canary = "CANARY-cluster-7d41a9-never-print"

    /// An emulator, a client, a kubeconfig file and a policy copying `platform/pull` to `team-*`.
    struct Cluster {
        let emulator: KubeEmulator
        let client: KubeClient
        let dir: TempDir
        let kubeconfig: String
        let readerKubeconfig: String
        let policy: String

        func counters() -> [String: Int] { emulator.counters() }
        func writes() -> Int { ["create", "update", "patch", "delete"].reduce(0) { $0 + (counters()[$1] ?? 0) } }
    }

    static let policyText = """
        apiVersion: dynsecret.io/v1alpha1
        kind: ReplicationPolicy
        metadata: {name: pull}
        spec:
          rules:
          - name: registry
            source: {namespace: platform, name: pull}
            targets: {namespacePatterns: ["team-*"]}
            serviceAccounts: [builder]
        """

    static func secretJSON(_ ns: String, _ name: String, _ value: String, labels: [String: String] = [:]) -> JSONValue {
        Fixtures.secret(ns, name, value, labels: labels).json
    }

    static func start(namespaces: Int, serviceAccountIn: [String] = []) async throws -> Cluster {
        var options = EmulatorOptions()
        options.tokens = [TokenGrant(token: token, user: "admin"), TokenGrant(token: readerToken, user: "reader", verbs: ["get", "list", "watch"])]
        let e = try await KubeEmulator.start(options)
        let c = KubeClient(config: KubeConfig(server: e.url, credentials: .token(token)), maxConcurrentRequests: 8)
        _ = try await c.create(.namespaces, Fixtures.namespace("platform"))
        _ = try await c.create(.secrets, secretJSON("platform", "pull", canary + "-v1"))
        try await Fixtures.createNamespaces(c, (0..<namespaces).map { String(format: "team-%04d", $0) }, labels: [:])
        for ns in serviceAccountIn {
            let sa = ServiceAccount(metadata: ObjectMeta(name: "builder", namespace: ns), imagePullSecrets: ["other"])
            _ = try await c.create(sa)
        }
        let dir = try TempDir()
        let kc = try dir.file("kubeconfig", e.kubeconfig(token: token))
        let rkc = try dir.file("reader-kubeconfig", e.kubeconfig(token: readerToken))
        let policy = try dir.file("policy.yaml", policyText)
        return Cluster(emulator: e, client: c, dir: dir, kubeconfig: kc, readerKubeconfig: rkc, policy: policy)
    }

    @Test func twoThousandNamespacesMinimalWrites() async throws {
        let cl = try await Self.start(namespaces: 2000)
        defer { Task { await cl.emulator.stop() } }

        cl.emulator.resetCounters()
        let first = await dynsecret(["replicate", "--policy", cl.policy, "--once", "--kubeconfig", cl.kubeconfig])
        #expect(first.code == 0, "\(first.stderr)")
        #expect(cl.counters()["create secrets"] == 2000)
        #expect(cl.writes() == 2000)
        #expect(cl.counters()["list secrets"] == 1, "one replica list, never every Secret")
        #expect(first.stdout.hasPrefix("policy pull: 2000 created, 0 updated, 0 deleted"))
        #expect(!first.stdout.contains(Self.canary) && !first.stderr.contains(Self.canary))

        cl.emulator.resetCounters()
        let second = await dynsecret(["replicate", "--policy", cl.policy, "--once", "--kubeconfig", cl.kubeconfig])
        #expect(second.code == 0, "\(second.stderr)")
        #expect(cl.writes() == 0)
        #expect((cl.counters()["get secrets"] ?? 0) == 1, "only the source is read by name when every target has a replica")
        #expect(second.stdout.hasPrefix("policy pull: 0 created, 0 updated"))

        var src = try await cl.client.get(Secret.self, namespace: "platform", name: "pull")
        src.data = ["token": Array((Self.canary + "-v2").utf8)]
        _ = try await cl.client.update(src)
        cl.emulator.resetCounters()
        let third = await dynsecret(["replicate", "--policy", cl.policy, "--once", "--kubeconfig", cl.kubeconfig, "--concurrency", "16"])
        #expect(third.code == 0, "\(third.stderr)")
        #expect(cl.counters()["patch secrets"] == 2000)
        #expect(cl.counters()["update secrets", default: 0] == 0)
        #expect(cl.writes() == 2000)
        let replica = try await cl.client.get(Secret.self, namespace: "team-1999", name: "pull")
        #expect(replica.data["token"] == Array((Self.canary + "-v2").utf8))
        #expect(!third.stdout.contains(Self.canary) && !third.stderr.contains(Self.canary))
    }

    @Test func foreignSameNameSecretIsUntouchedAndReported() async throws {
        let cl = try await Self.start(namespaces: 5, serviceAccountIn: ["team-0001", "team-0003"])
        defer { Task { await cl.emulator.stop() } }
        let foreign = try await cl.client.create(.secrets, Self.secretJSON("team-0002", "pull", "theirs"))
        cl.emulator.resetCounters()

        let dry = await dynsecret(["replicate", "--policy", cl.policy, "--dry-run", "--kubeconfig", cl.kubeconfig])
        #expect(dry.code == 0)
        #expect(dry.stdout.hasPrefix("policy pull: 4 create, 0 update, 0 delete, 2 patch-serviceaccount"))
        #expect(cl.writes() == 0)

        let run = await dynsecret(["replicate", "--policy", cl.policy, "--once", "--kubeconfig", cl.kubeconfig])
        #expect(run.code == 0, "\(run.stderr)")
        #expect(run.stdout == "policy pull: 4 created, 0 updated, 0 deleted, 2 ServiceAccount(s) patched, 3 reported, 0 failed, 0 skipped\n")
        #expect(run.stderr.contains("warning: team-0002/pull: conflict"))
        #expect(cl.counters()["create secrets"] == 4 && cl.counters()["patch serviceaccounts"] == 2)
        let after = try await cl.client.get(.secrets, namespace: "team-0002", name: "pull")
        #expect(after["metadata"]?["resourceVersion"] == foreign["metadata"]?["resourceVersion"])
        let sa = try await cl.client.get(ServiceAccount.self, namespace: "team-0003", name: "builder")
        #expect(sa.imagePullSecrets == ["other", "pull"])

        cl.emulator.resetCounters()
        let again = await dynsecret(["replicate", "--policy", cl.policy, "--once", "--kubeconfig", cl.kubeconfig])
        #expect(again.code == 0 && cl.writes() == 0)
        let sa2 = try await cl.client.get(ServiceAccount.self, namespace: "team-0003", name: "builder")
        #expect(sa2.imagePullSecrets == ["other", "pull"], "never appended twice")
    }

    @Test func conflictInOneTargetDoesNotStopTheOthers() async throws {
        let cl = try await Self.start(namespaces: 6)
        defer { Task { await cl.emulator.stop() } }
        let first = await dynsecret(["replicate", "--policy", cl.policy, "--once", "--kubeconfig", cl.kubeconfig])
        #expect(first.code == 0)
        var src = try await cl.client.get(Secret.self, namespace: "platform", name: "pull")
        src.data = ["token": Array((Self.canary + "-v2").utf8)]
        _ = try await cl.client.update(src)

        // Plan from the cluster, then someone else changes one replica before the writes land.
        let policy = try ReplicationPolicy.load(Array(Self.policyText.utf8), source: "policy.yaml")
        let state = try await cl.client.replicationState(for: policy)
        let plan = ReplicationPlanner.plan(policy, state)
        #expect(plan.count(.update) == 6)
        var theirs = try await cl.client.get(Secret.self, namespace: "team-0003", name: "pull")
        theirs.metadata.annotations["someone"] = "else"
        _ = try await cl.client.update(theirs)

        cl.emulator.resetCounters()
        let result = await KubeReplicationApplier.apply(plan, writer: KubeReplicationWriter(client: cl.client, serviceAccounts: state.serviceAccounts), concurrency: 4)
        #expect(result.applied == 5)
        #expect(result.failures.count == 1)
        let message = try #require(result.failures.first?.message)
        #expect(message.hasPrefix("update secret team-0003/pull: "))
        #expect(message.contains("the object has been modified"))
        #expect(!message.contains(Self.canary))
        #expect(cl.counters()["patch secrets"] == 6)

        // Through the CLI: the failed target is written on the next pass.
        let next = await dynsecret(["replicate", "--policy", cl.policy, "--once", "--kubeconfig", cl.kubeconfig])
        #expect(next.code == 0)
        #expect(next.stdout.hasPrefix("policy pull: 0 created, 1 updated"))
    }

    @Test func failedWritesExit1AndOthersContinue() async throws {
        let cl = try await Self.start(namespaces: 3)
        defer { Task { await cl.emulator.stop() } }
        let run = await dynsecret(["replicate", "--policy", cl.policy, "--once", "--kubeconfig", cl.readerKubeconfig])
        #expect(run.code == 1)
        #expect(run.stdout.hasPrefix("policy pull: 0 created"))
        #expect(run.stderr.components(separatedBy: "failed: create secret team-").count == 4, "each target tried: \(run.stderr)")
        #expect(run.stderr.contains("forbidden"))
        #expect(run.stderr.hasSuffix("error: 3 write(s) failed; the other targets were written\n"))
        #expect(!run.stderr.contains(Self.canary))
    }

    @Test func selectorSourcesAreListedServerSide() async throws {
        let cl = try await Self.start(namespaces: 2)
        defer { Task { await cl.emulator.stop() } }
        _ = try await cl.client.create(.secrets, Self.secretJSON("platform", "a", "x", labels: ["dist": "yes", "tier": "gold"]))
        _ = try await cl.client.create(.secrets, Self.secretJSON("platform", "b", "x", labels: ["dist": "yes", "tier": "silver"]))
        _ = try await cl.client.create(.secrets, Self.secretJSON("platform", "c", "x", labels: ["dist": "yes", "tier": "bronze"]))
        _ = try await cl.client.create(.secrets, Self.secretJSON("platform", "d", "x", labels: ["tier": "gold"]))
        let policy = try cl.dir.file("selector.yaml", """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: sel}
            spec:
              rules:
              - name: dist
                source:
                  namespace: platform
                  selector:
                    matchLabels: {dist: "yes"}
                    matchExpressions: [{key: tier, operator: In, values: [gold, silver]}, {key: legacy, operator: DoesNotExist}]
                targets: {namespaces: [team-0001]}
            """)
        #expect(LabelSelector(matchLabels: ["dist": "yes"], matchExpressions: [.init(key: "tier", op: "In", values: ["gold", "silver"]), .init(key: "legacy", op: "DoesNotExist")]).queryString
            == "dist=yes,tier in (gold,silver),!legacy")
        cl.emulator.resetCounters()
        let run = await dynsecret(["replicate", "--policy", policy, "--once", "--kubeconfig", cl.kubeconfig])
        #expect(run.code == 0, "\(run.stderr)")
        #expect(run.stdout.hasPrefix("policy sel: 2 created"))
        let names = try await cl.client.list(Secret.self, namespace: "team-0001").items.compactMap(\.metadata.name).sorted()
        #expect(names == ["a", "b"])
    }

    @Test func invalidPolicyWritesNothingAndExits2() async throws {
        let cl = try await Self.start(namespaces: 3)
        defer { Task { await cl.emulator.stop() } }
        let bad = try cl.dir.file("bad.yaml", Self.policyText.replacingOccurrences(of: "namespacePatterns", with: "namespacePatern"))
        cl.emulator.resetCounters()
        let run = await dynsecret(["replicate", "--policy", bad, "--once", "--kubeconfig", cl.kubeconfig])
        #expect(run.code == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.hasPrefix("error: ") && run.stderr.contains("namespacePatern"))
        #expect(cl.counters().isEmpty, "no request at all: \(cl.counters())")
    }
}
