import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// `dynsecret migrate` against the emulator, per tool: a cluster prepared with the tool's own annotations and copies
/// (as that tool leaves them), `migrate --apply`, then every copy kept its uid, ServiceAccounts list the same names,
/// the next `replicate --dry-run` plans zero writes, and a source change propagates under dynsecret.
@Suite(.serialized, .heavy) struct MigrateTests {
    static let token = "migrate-admin-token"
    static let canary = "CANARY-migrate-0c9e44-never-print"

    struct Cluster {
        let emulator: KubeEmulator
        let client: KubeClient
        let dir: TempDir
        let kubeconfig: String
    }

    static func start(_ namespaces: [String: [String: String]]) async throws -> Cluster {
        var options = EmulatorOptions()
        options.tokens = [TokenGrant(token: token, user: "admin")]
        let e = try await KubeEmulator.start(options)
        let c = KubeClient(config: KubeConfig(server: e.url, credentials: .token(token)))
        _ = try await c.create(.namespaces, Fixtures.namespace("platform"))
        for (ns, labels) in namespaces.sorted(by: { $0.key < $1.key }) { _ = try await c.create(.namespaces, Fixtures.namespace(ns, labels: labels)) }
        // Pods in team-a pull with `regcred` through the default ServiceAccount.
        var sa = try await c.get(ServiceAccount.self, namespace: "team-a", name: "default")
        sa.imagePullSecrets = ["regcred"]
        _ = try await c.update(sa)
        let dir = try TempDir()
        return Cluster(emulator: e, client: c, dir: dir, kubeconfig: try dir.file("kubeconfig", e.kubeconfig(token: token)))
    }

    static func secret(_ ns: String, _ value: String, labels: [String: String] = [:], annotations: [String: String] = [:]) -> Secret {
        var s = Fixtures.secret(ns, "regcred", value, labels: labels)
        s.metadata.annotations = annotations
        return s
    }

    static func configMap(_ ns: String, _ value: String, annotations: [String: String] = [:]) -> ConfigMap {
        ConfigMap(metadata: ObjectMeta(name: "ca", namespace: ns, annotations: annotations), data: ["ca.crt": value], binaryData: ["der": [0, 0xFF, 7]])
    }

    /// The uid of every object at `refs`, by ref.
    static func uids(_ c: KubeClient, _ refs: [ReplicaRef]) async throws -> [ReplicaRef: String] {
        var out: [ReplicaRef: String] = [:]
        for r in refs { out[r] = try await c.replicaObject(r.kind, namespace: r.namespace, name: r.name).metadata.uid }
        return out
    }

    /// Runs the migration, then checks the switch: uids kept, tool keys gone, markers set, ServiceAccount unchanged,
    /// zero writes planned next, and a source change carried by dynsecret.
    static func migrateAndCheck(_ cl: Cluster, tool: String, copies: [ReplicaRef], created: [ReplicaRef], extra: [String] = [],
                                toolPrefix: String, sources: [ReplicaRef]) async throws {
        let c = cl.client
        let before = try await uids(c, copies)
        let policyOut = cl.dir.url.appendingPathComponent("policy.yaml").path
        cl.emulator.resetCounters()
        let dry = await dynsecret(["migrate", "--from", tool, "--policy-out", policyOut, "--kubeconfig", cl.kubeconfig, "-o", "json"] + extra)
        #expect(dry.code == 0, "\(dry.stderr)")
        #expect(Fixtures.writes(cl.emulator.counters(), by: "admin") == 0, "--dry-run writes nothing to the cluster")
        let planned = try JSONParser.parse(Array(dry.stdout.utf8))["actions"]?.arrayValue ?? []
        let updates = planned.filter { $0["action"]?.stringValue == "update" }.map { "\($0["kind"]!.stringValue!) \($0["namespace"]!.stringValue!)/\($0["name"]!.stringValue!)" }
        #expect(Set(updates) == Set(copies.map { "\($0.kind.rawValue) \($0.key)" }), "\(dry.stdout)")
        #expect(!planned.contains { $0["action"]?.stringValue == "delete" })

        let r = await dynsecret(["migrate", "--from", tool, "--policy-out", policyOut, "--kubeconfig", cl.kubeconfig, "--apply"] + extra)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("\(copies.count) adopted in place, \(created.count) created"), "\(r.stdout)")
        let counters = cl.emulator.counters()
        #expect(counters["delete"] == nil, "nothing deleted: \(counters)")
        #expect((counters["create secrets"] ?? 0) + (counters["create configmaps"] ?? 0) == created.count, "only missing copies are created")
        let after = try await uids(c, copies)
        #expect(after == before, "every copy kept its uid")
        for ref in copies + created {
            let o = try await c.replicaObject(ref.kind, namespace: ref.namespace, name: ref.name)
            #expect(o.metadata.labels[ReplicaMarkers.replicaLabel] == "true", "\(ref)")
            #expect(!o.metadata.annotations.keys.contains { $0.hasPrefix(toolPrefix) } && !o.metadata.labels.keys.contains { $0.hasPrefix(toolPrefix) },
                    "\(ref) still carries \(tool)'s bookkeeping: \(o.metadata.annotations)")
        }
        #expect(try await c.get(ServiceAccount.self, namespace: "team-a", name: "default").imagePullSecrets == ["regcred"])

        let next = await dynsecret(["replicate", "--policy", policyOut, "--kubeconfig", cl.kubeconfig, "--dry-run", "-o", "json"])
        #expect(next.code == 0, "\(next.stderr)")
        let summary = try JSONParser.parse(Array(next.stdout.utf8))["summary"]
        for verb in ["create", "update", "delete", "patch-serviceaccount"] { #expect(summary?[verb] == .number("0"), "\(verb): \(next.stdout)") }

        // The source changes; dynsecret carries it to every copy.
        for s in sources {
            switch s.kind {
            case .secret: _ = try await c.mergePatch(Secret.self, namespace: s.namespace, name: s.name,
                                                     .object(JSONObject([("data", .object(JSONObject([("token", .string(Base64.encode(Array("v2".utf8))))])))])))
            case .configMap: _ = try await c.mergePatch(ConfigMap.self, namespace: s.namespace, name: s.name,
                                                        .object(JSONObject([("data", .object(JSONObject([("ca.crt", .string("v2"))])))])))
            }
        }
        let once = await dynsecret(["replicate", "--policy", policyOut, "--kubeconfig", cl.kubeconfig, "--once"])
        #expect(once.code == 0, "\(once.stderr)")
        for ref in copies + created {
            switch try await c.replicaObject(ref.kind, namespace: ref.namespace, name: ref.name) {
            case .secret(let s): #expect(s.data["token"] == Array("v2".utf8), "\(ref)")
            case .configMap(let m): #expect(m.data["ca.crt"] == "v2" && m.binaryData["der"] == [0, 0xFF, 7], "\(ref)")
            }
        }
        #expect(try await uids(c, copies) == before)
        for out in [dry, r, next, once] { #expect(!out.stdout.contains(canary) && !out.stderr.contains(canary)) }
    }

    @Test func reflector() async throws {
        let k = "reflector.v1.k8s.emberstack.com/"
        let cl = try await Self.start(["team-a": [:], "team-b": [:], "team-c": [:], "other": [:]])
        defer { Task { await cl.emulator.stop() } }
        let c = cl.client
        let value = Self.canary
        _ = try await c.create(Self.secret("platform", value, annotations: [
            k + "reflection-allowed": "true", k + "reflection-allowed-namespaces": "team-a,team-[bc]", k + "reflection-auto-enabled": "true",
        ]))
        let source = try await c.get(Secret.self, namespace: "platform", name: "regcred")
        for ns in ["team-a", "team-b"] {
            _ = try await c.create(Self.secret(ns, value, annotations: [
                k + "reflects": "platform/regcred", k + "auto-reflects": "True", k + "reflected-version": source.metadata.resourceVersion!,
            ]))
        }
        // A ConfigMap reflected by hand (`reflects` on a mirror the user created) into `other`.
        _ = try await c.create(Self.configMap("platform", "pem", annotations: [k + "reflection-allowed": "true"]))
        _ = try await c.create(Self.configMap("other", "pem", annotations: [k + "reflects": "platform/ca", k + "reflected-version": "1"]))
        try await Self.migrateAndCheck(cl, tool: "reflector",
                                       copies: [.init(.secret, "team-a", "regcred"), .init(.secret, "team-b", "regcred"), .init(.configMap, "other", "ca")],
                                       created: [.init(.secret, "team-c", "regcred")], toolPrefix: k,
                                       sources: [.init(.secret, "platform", "regcred"), .init(.configMap, "platform", "ca")])
        let policy = try String(contentsOfFile: cl.dir.url.appendingPathComponent("policy.yaml").path, encoding: .utf8)
        #expect(policy.contains("regex \"team-[bc]\" is not expressible as a glob; listed the 2 namespaces it matches now: team-b, team-c"), "\(policy)")
    }

    @Test func replicator() async throws {
        let k = "replicator.v1.mittwald.de/"
        let cl = try await Self.start(["team-a": [:], "team-b": [:], "team-c": [:]])
        defer { Task { await cl.emulator.stop() } }
        let c = cl.client
        _ = try await c.create(Self.secret("platform", Self.canary, labels: ["tier": "registry"], annotations: [k + "replicate-to": "team-a,team-b", k + "strip-labels": "true"]))
        for ns in ["team-a", "team-b"] {
            _ = try await c.create(Self.secret(ns, Self.canary, annotations: [k + "replicated-from-version": "7", k + "replicated-at": "2026-11-30T10:00:00Z"]))
        }
        // Pull mode: the ConfigMap allows team-*, and team-c's stub asks for it.
        _ = try await c.create(Self.configMap("platform", "pem", annotations: [k + "replication-allowed": "true", k + "replication-allowed-namespaces": "team-.*"]))
        _ = try await c.create(Self.configMap("team-c", "pem", annotations: [k + "replicate-from": "platform/ca", k + "replicated-from-version": "3"]))
        // A stub under another name, and one in a namespace the source does not allow.
        var trust = Self.configMap("team-b", "pem", annotations: [k + "replicate-from": "platform/ca", k + "replicated-from-version": "3"])
        trust.metadata.name = "trust"
        _ = try await c.create(trust)
        var outside = trust
        outside.metadata.namespace = "platform-ops"
        _ = try await c.create(.namespaces, Fixtures.namespace("platform-ops"))
        _ = try await c.create(outside)
        try await Self.migrateAndCheck(cl, tool: "replicator",
                                       copies: [.init(.secret, "team-a", "regcred"), .init(.secret, "team-b", "regcred"), .init(.configMap, "team-c", "ca"),
                                                .init(.configMap, "team-b", "trust")],
                                       created: [], toolPrefix: k, sources: [.init(.secret, "platform", "regcred"), .init(.configMap, "platform", "ca")])
        // strip-labels: true → no label copied; annotations are copied (strip-annotations unset), the tool's never.
        let copy = try await c.get(Secret.self, namespace: "team-a", name: "regcred")
        #expect(copy.metadata.labels["tier"] == nil)
        // Pull stubs became dynsecret requests of a `targets.requested` rule; the push copies did not.
        for (ns, name) in [("team-c", "ca"), ("team-b", "trust")] {
            #expect(try await c.get(ConfigMap.self, namespace: ns, name: name).metadata.annotations[ReplicaMarkers.requestAnnotation] == "platform/ca")
        }
        #expect(copy.metadata.annotations[ReplicaMarkers.requestAnnotation] == nil)
        let policy = try ReplicationPolicy.load(Array(try Data(contentsOf: cl.dir.url.appendingPathComponent("policy.yaml"))), source: "policy.yaml")
        #expect(policy.rules.map(\.targets.requested) == [false, true], "\(policy.rules)")
        #expect(policy.rules[1].targets.namespacePatterns == ["team-*"])
        let left = try await c.get(ConfigMap.self, namespace: "platform-ops", name: "trust")
        #expect(left.data["ca.crt"] == "pem" && left.metadata.annotations[k + "replicate-from"] == "platform/ca", "a stub the source does not allow is left alone")
    }

    @Test func kubed() async throws {
        let cl = try await Self.start(["team-a": ["env": "prod"], "team-b": ["env": "prod"], "team-c": ["env": "dev"]])
        defer { Task { await cl.emulator.stop() } }
        let c = cl.client
        _ = try await c.create(Self.secret("platform", Self.canary, annotations: ["kubed.appscode.com/sync": "env=prod"]))
        _ = try await c.create(Self.secret("team-a", Self.canary, labels: ["kubed.appscode.com/origin.name": "regcred", "kubed.appscode.com/origin.namespace": "platform"],
                                           annotations: ["kubed.appscode.com/origin": #"{"namespace":"platform","name":"regcred","uid":"x","resourceVersion":"5"}"#]))
        try await Self.migrateAndCheck(cl, tool: "kubed", copies: [.init(.secret, "team-a", "regcred")], created: [.init(.secret, "team-b", "regcred")],
                                       toolPrefix: "kubed.appscode.com/", sources: [.init(.secret, "platform", "regcred")])
    }

    @Test func kyverno() async throws {
        let cl = try await Self.start(["team-a": ["pull": "yes"], "team-b": ["pull": "yes"], "team-c": [:]])
        defer { Task { await cl.emulator.stop() } }
        let c = cl.client
        _ = try await c.create(Self.secret("platform", Self.canary))
        let labels = ["app.kubernetes.io/managed-by": "kyverno", "generate.kyverno.io/policy-name": "sync-regcred", "generate.kyverno.io/rule-name": "clone",
                      "generate.kyverno.io/trigger-kind": "Namespace"]
        for ns in ["team-a", "team-b"] { _ = try await c.create(Self.secret(ns, Self.canary, labels: labels)) }
        let policy = try cl.dir.file("kyverno.yaml", """
            apiVersion: kyverno.io/v1
            kind: ClusterPolicy
            metadata: {name: sync-regcred}
            spec:
              generateExisting: true
              rules:
              - name: clone
                match:
                  any:
                  - resources:
                      kinds: [Namespace]
                      selector: {matchLabels: {pull: "yes"}}
                generate:
                  apiVersion: v1
                  kind: Secret
                  name: regcred
                  namespace: "{{request.object.metadata.name}}"
                  synchronize: true
                  clone: {namespace: platform, name: regcred}
            """)
        try await Self.migrateAndCheck(cl, tool: "kyverno", copies: [.init(.secret, "team-a", "regcred"), .init(.secret, "team-b", "regcred")], created: [],
                                       extra: ["-f", policy], toolPrefix: "generate.kyverno.io/", sources: [.init(.secret, "platform", "regcred")])
        #expect(try await c.get(Secret.self, namespace: "team-a", name: "regcred").metadata.labels["app.kubernetes.io/managed-by"] == "dynsecret")
    }

    @Test func badAnnotationsStopEverything() async throws {
        let k = "reflector.v1.k8s.emberstack.com/"
        let cl = try await Self.start(["team-a": [:]])
        defer { Task { await cl.emulator.stop() } }
        _ = try await cl.client.create(Self.secret("platform", Self.canary, annotations: [k + "reflection-allowed": "true", k + "reflection-allowed-namespaces": "team-[", k + "reflection-auto-enabled": "true"]))
        _ = try await cl.client.create(Self.secret("team-a", Self.canary, annotations: [k + "reflects": "platform"]))
        cl.emulator.resetCounters()
        let out = cl.dir.url.appendingPathComponent("policy.yaml").path
        let r = await dynsecret(["migrate", "--from", "reflector", "--policy-out", out, "--kubeconfig", cl.kubeconfig, "--apply"])
        #expect(r.code == 1)
        #expect(r.stderr.contains("Secret platform/regcred annotation \(k)reflection-allowed-namespaces: \"team-[\" is not a valid regular expression"), "\(r.stderr)")
        #expect(r.stderr.contains("Secret team-a/regcred annotation \(k)reflects: \"platform\" is not NAMESPACE/NAME"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out), "no policy written")
        #expect(Fixtures.writes(cl.emulator.counters(), by: "admin") == 0, "nothing written to the cluster")
        #expect(!r.stderr.contains(Self.canary))
    }

    @Test func offlineDryRunFromManifests() async throws {
        let dir = try TempDir()
        let manifests = try dir.file("cluster.yaml", """
            apiVersion: v1
            kind: Namespace
            metadata: {name: team-a}
            ---
            apiVersion: v1
            kind: Secret
            metadata:
              name: regcred
              namespace: platform
              annotations: {kubed.appscode.com/sync: ""}
            data: {token: djE=}
            """)
        let out = dir.url.appendingPathComponent("p.yaml").path
        let r = await dynsecret(["migrate", "--from", "kubed", "--policy-out", out, "-f", manifests])
        #expect(r.code == 0, "\(r.stderr)")
        let rows = r.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).prefix(3).joined(separator: " ") }
        #expect(rows.contains("create Secret team-a/regcred"), "\(r.stdout)")
        let policy = try ReplicationPolicy.load(Array(try Data(contentsOf: URL(fileURLWithPath: out))), source: out)
        #expect(policy.rules.map(\.targets.namespacePatterns) == [["*"]] && policy.name == "migrated-kubed")
    }
}
