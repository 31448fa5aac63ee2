import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// `replicate` across a fleet: one hub and member API servers (separate emulator processes' worth of state, each
/// with its own token), members reached through a kubeconfig Secret in the hub and through contexts of a member
/// kubeconfig matched by a pattern, one member down. Sources come from the hub only; replicas name their hub.
@Suite(.serialized) struct ReplicateFleetTests {
    static let canary = "CANARY-fleet-3a9d51-never-print"

    struct Fleet {
        let hub: KubeEmulator
        let m1: KubeEmulator
        let gpu1: KubeEmulator
        let dir: TempDir
        let hubConfig: String
        let memberConfig: String
        let policy: String
        func clients() -> (hub: KubeClient, m1: KubeClient, gpu1: KubeClient) {
            (KubeClient(config: KubeConfig(server: hub.url, credentials: .token("hub-token"))),
             KubeClient(config: KubeConfig(server: m1.url, credentials: .token("m1-token"))),
             KubeClient(config: KubeConfig(server: gpu1.url, credentials: .token("gpu1-token"))))
        }
        func stop() async {
            await hub.stop()
            await m1.stop()
            await gpu1.stop()
        }
    }

    static func emulator(_ token: String) async throws -> KubeEmulator {
        var options = EmulatorOptions()
        options.tokens = [TokenGrant(token: token, user: "admin")]
        return try await KubeEmulator.start(options)
    }

    static func start() async throws -> Fleet {
        let hub = try await emulator("hub-token"), m1 = try await emulator("m1-token"), gpu1 = try await emulator("gpu1-token")
        // A member that is gone: its port is closed.
        let dead = try await emulator("dead-token")
        let deadURL = dead.url
        await dead.stop()
        let dir = try TempDir()
        let fleet = Fleet(hub: hub, m1: m1, gpu1: gpu1, dir: dir, hubConfig: try dir.file("hub.kubeconfig", hub.kubeconfig(token: "hub-token")),
                          memberConfig: try dir.file("members.kubeconfig", """
                              apiVersion: v1
                              kind: Config
                              clusters:
                              - {name: gpu-1, cluster: {server: "\(gpu1.url)"}}
                              - {name: gpu-9, cluster: {server: "\(deadURL)"}}
                              - {name: other, cluster: {server: "\(deadURL)"}}
                              users:
                              - {name: gpu-1, user: {token: gpu1-token}}
                              - {name: gpu-9, user: {token: dead-token}}
                              contexts:
                              - {name: gpu-1, context: {cluster: gpu-1, user: gpu-1}}
                              - {name: gpu-9, context: {cluster: gpu-9, user: gpu-9}}
                              - {name: other, context: {cluster: other, user: gpu-9}}
                              """),
                          policy: try dir.file("policy.yaml", """
                              apiVersion: dynsecret.io/v1alpha1
                              kind: ReplicationPolicy
                              metadata: {name: fleet}
                              spec:
                                clusters:
                                - name: m1
                                  kubeconfigSecret: {namespace: dynsecret-system, name: m1-kubeconfig}
                                - name: gpu
                                  contextPattern: "gpu-*"
                                rules:
                                - name: pull
                                  source: {namespace: platform, name: regcred}
                                  targets:
                                    namespacePatterns: ["team-*", "platform"]
                                    clusters: [local, m1, gpu]
                              """))
        let (h, a, g) = fleet.clients()
        for ns in ["platform", "dynsecret-system", "team-a"] { _ = try await h.create(.namespaces, Fixtures.namespace(ns)) }
        for c in [a, g] { for ns in ["platform", "team-a", "team-b"] { _ = try await c.create(.namespaces, Fixtures.namespace(ns)) } }
        _ = try await h.create(Fixtures.secret("platform", "regcred", canary + "-v1"))
        _ = try await h.create(Secret(metadata: ObjectMeta(name: "m1-kubeconfig", namespace: "dynsecret-system"),
                                      data: ["kubeconfig": Array(m1.kubeconfig(token: "m1-token").utf8)]))
        return fleet
    }

    static func replicaNames(_ c: KubeClient) async throws -> [String] {
        try await c.list(Secret.self, namespace: nil, options: ListOptions(labelSelector: "dynsecret.io/replica=true")).items
            .map { "\($0.metadata.namespace ?? "")/\($0.metadata.name ?? "")" }.sorted()
    }

    @Test func everyClusterIsPlannedAndWrittenAndADeadOneStopsNoOther() async throws {
        let f = try await Self.start()
        defer { Task { await f.stop() } }
        let base = ["replicate", "--policy", f.policy, "--kubeconfig", f.hubConfig, "--member-kubeconfig", f.memberConfig]

        let unnamed = await dynsecret(base + ["--dry-run"])
        #expect(unnamed.code == 2 && unnamed.stderr.contains("give --cluster-name"), "\(unnamed.stderr)")

        let dry = await dynsecret(base + ["--dry-run", "--cluster-name", "hub-a"])
        #expect(dry.code == 1, "\(dry.stderr)")
        #expect(dry.stdout.contains("cluster local: policy fleet: 1 create"), "\(dry.stdout)")
        #expect(dry.stdout.contains("cluster m1: policy fleet: 3 create"), "\(dry.stdout)")
        #expect(dry.stdout.contains("cluster gpu-1: policy fleet: 3 create"), "\(dry.stdout)")
        #expect(dry.stdout.contains("cluster gpu-9: error: reading the cluster:"), "\(dry.stdout)")
        #expect(!dry.stdout.contains("cluster other"), "a context the pattern does not match is no cluster")
        #expect(dry.stderr.contains("1 of 4 cluster(s) failed (gpu-9)"), "\(dry.stderr)")
        let (h, a, g) = f.clients()
        #expect(try await Self.replicaNames(a).isEmpty, "--dry-run writes nothing")

        let json = await dynsecret(base + ["--dry-run", "--cluster-name", "hub-a", "-o", "json"])
        let doc = try JSONParser.parse(Array(json.stdout.utf8))
        #expect(doc["clusters"]?.arrayValue?.map { $0["cluster"]?.stringValue ?? "" } == ["local", "gpu-1", "gpu-9", "m1"])
        #expect(doc["clusters"]?.arrayValue?[1]["summary"]?["create"] == .number("3"))
        #expect(doc["clusters"]?.arrayValue?[2]["error"]?.stringValue?.isEmpty == false)

        let statusArgs = ["status", "--policy", f.policy, "--kubeconfig", f.hubConfig, "--member-kubeconfig", f.memberConfig, "--cluster-name", "hub-a"]
        let pending = await dynsecret(statusArgs)
        #expect(pending.code == 1, "\(pending.stderr)")
        #expect(pending.stdout.range(of: #"pull\s+m1\s+3\s+0\s+3\s+0\s+0\s+0"#, options: .regularExpression) != nil, "\(pending.stdout)")

        let once = await dynsecret(base + ["--once", "--cluster-name", "hub-a"])
        #expect(once.code == 1, "\(once.stderr)")
        #expect(once.stdout.contains("cluster m1: policy fleet: 3 created"), "\(once.stdout)")
        #expect(try await Self.replicaNames(h) == ["team-a/regcred"])
        for c in [a, g] {
            // In a member the source namespace is an ordinary target: the sources are the hub's.
            #expect(try await Self.replicaNames(c) == ["platform/regcred", "team-a/regcred", "team-b/regcred"])
            let copy = try await c.get(Secret.self, namespace: "team-b", name: "regcred")
            #expect(copy.data["token"] == Array((Self.canary + "-v1").utf8))
            #expect(copy.metadata.annotations[ReplicaMarkers.sourceClusterAnnotation] == "hub-a")
        }
        let status = await dynsecret(statusArgs + ["-o", "json"])
        #expect(status.code == 1, "gpu-9 cannot be read: \(status.stderr)")
        let rows = try JSONParser.parse(Array(status.stdout.utf8))["rules"]?.arrayValue ?? []
        func row(_ cluster: String) -> JSONValue? { rows.first { $0["cluster"]?.stringValue == cluster } }
        #expect(row("m1")?["inSync"] == .number("3") && row("m1")?["outOfDate"] == .number("0") && row("m1")?["targeted"] == .number("3"), "\(status.stdout)")
        #expect(row("local")?["inSync"] == .number("1"))
        #expect(row("gpu-9")?["errors"] == .number("1") && row("gpu-9")?["error"]?.stringValue?.isEmpty == false)
        let again = await dynsecret(base + ["--dry-run", "--cluster-name", "hub-a", "-o", "json"])
        let planned = try JSONParser.parse(Array(again.stdout.utf8))["clusters"]?.arrayValue ?? []
        #expect(planned.filter { $0["error"] == nil }.allSatisfy { $0["summary"]?["create"] == .number("0") && $0["summary"]?["update"] == .number("0") }, "\(again.stdout)")

        // The source changes: every reachable cluster follows.
        _ = try await h.mergePatch(Secret.self, namespace: "platform", name: "regcred",
                                   .object(JSONObject([("data", .object(JSONObject([("token", .string(Base64.encode(Array((Self.canary + "-v2").utf8))))])))])))
        _ = await dynsecret(base + ["--once", "--cluster-name", "hub-a"])
        for c in [a, g] { #expect(try await c.get(Secret.self, namespace: "team-a", name: "regcred").data["token"] == Array((Self.canary + "-v2").utf8)) }

        // A second hub with the same policy: hub-a's replicas are foreign to it; it neither overwrites nor prunes them.
        let before = try await a.get(Secret.self, namespace: "team-a", name: "regcred")
        let other = await dynsecret(base + ["--once", "--cluster-name", "hub-b"])
        #expect(other.stderr.contains("cluster m1: team-a/regcred: conflict: Secret team-a/regcred is a replica written by hub hub-a; left alone"), "\(other.stderr)")
        #expect(try await a.get(Secret.self, namespace: "team-a", name: "regcred").metadata.resourceVersion == before.metadata.resourceVersion)

        for r in [unnamed, dry, json, pending, once, status, again, other] { #expect(!r.stdout.contains(Self.canary) && !r.stderr.contains(Self.canary)) }
    }

    @Test func aBrokenKubeconfigSecretIsThatClustersErrorOnly() async throws {
        let f = try await Self.start()
        defer { Task { await f.stop() } }
        let (h, _, g) = f.clients()
        _ = try await h.mergePatch(Secret.self, namespace: "dynsecret-system", name: "m1-kubeconfig",
                                   .object(JSONObject([("data", .object(JSONObject([("kubeconfig", .null), ("other", .string("eA=="))])))])))
        let r = await dynsecret(["replicate", "--policy", f.policy, "--kubeconfig", f.hubConfig, "--member-kubeconfig", f.memberConfig,
                                 "--once", "--cluster-name", "hub-a"])
        #expect(r.code == 1)
        #expect(r.stdout.contains("cluster m1: error: cluster configuration: kubeconfig Secret dynsecret-system/m1-kubeconfig key kubeconfig: no such key"), "\(r.stdout)")
        #expect(try await Self.replicaNames(g).count == 3, "the other members are written")
    }
}

/// Registering a member: `deploy/member` renders the RBAC the hub needs there, `cluster kubeconfig` turns the
/// member's ServiceAccount token Secret into the hub's kubeconfig Secret, and a fleet run then writes the member
/// holding exactly that RBAC.
@Suite(.serialized) struct MemberRegistrationTests {
    /// The rules of `deploy/member`'s ClusterRole (rendered with kubectl kustomize), as the emulator enforces them.
    static func memberRules(_ objects: [JSONValue]? = nil) throws -> [TokenGrant.Rule] {
        let objects = try objects ?? DeployManifestTests.objects(try DeployManifestTests.render(DeployManifestTests.deploy.appendingPathComponent("member")))
        return (try DeployManifestTests.object(objects, kind: "ClusterRole")["rules"]?.arrayValue ?? []).map { rule in
            TokenGrant.Rule(verbs: Set((rule["verbs"]?.arrayValue ?? []).compactMap(\.stringValue)),
                            resources: Set((rule["resources"]?.arrayValue ?? []).compactMap(\.stringValue)))
        }
    }

    @Test(.heavy, .enabled(if: kubectlPath != nil, "needs kubectl (kustomize)"))
    func deployMemberAndClusterKubeconfigRegisterAMember() async throws {
        let rendered = try DeployManifestTests.render(DeployManifestTests.deploy.appendingPathComponent("member"))
        let objects = try DeployManifestTests.objects(rendered)
        #expect(objects.map { $0["kind"]?.stringValue ?? "" }.sorted() == ["ClusterRole", "ClusterRoleBinding", "Namespace", "Secret", "ServiceAccount"])
        let token = try DeployManifestTests.object(objects, kind: "Secret")
        #expect(token["type"]?.stringValue == SecretType.serviceAccountToken)
        let rules = try Self.memberRules(objects)

        var memberOptions = EmulatorOptions()
        memberOptions.tokens = [TokenGrant(token: "member-admin", user: "admin"), TokenGrant(token: "sa-token-7f3e", user: "member-sa", rules: rules)]
        let member = try await KubeEmulator.start(memberOptions)
        var hubOptions = EmulatorOptions()
        hubOptions.tokens = [TokenGrant(token: "hub-admin", user: "admin")]
        let hub = try await KubeEmulator.start(hubOptions)
        defer { Task { await member.stop(); await hub.stop() } }
        let m = KubeClient(config: KubeConfig(server: member.url, credentials: .token("member-admin")))
        let h = KubeClient(config: KubeConfig(server: hub.url, credentials: .token("hub-admin")))
        for ns in ["dynsecret-system", "team-a"] { _ = try await m.create(.namespaces, Fixtures.namespace(ns)) }
        for ns in ["dynsecret-system", "platform"] { _ = try await h.create(.namespaces, Fixtures.namespace(ns)) }
        _ = try await h.create(Fixtures.secret("platform", "regcred", "v1"))
        let dir = try TempDir()
        let memberConfig = try dir.file("member.kubeconfig", member.kubeconfig(token: "member-admin"))

        // Before the token controller has filled it: a clear error, nothing printed.
        var unfilled = Secret(metadata: ObjectMeta(name: "dynsecret-member-token", namespace: "dynsecret-system",
                                                   annotations: ["kubernetes.io/service-account.name": "dynsecret-member"]),
                              type: SecretType.serviceAccountToken)
        unfilled = try await m.create(unfilled)
        var r = await dynsecret(["cluster", "kubeconfig", "--kubeconfig", memberConfig, "--name", "edge-1"])
        #expect(r.code == 2 && r.stderr.contains("has no token yet") && r.stdout.isEmpty, "\(r.stderr)")
        // As the token controller fills it.
        _ = try await m.mergePatch(Secret.self, namespace: "dynsecret-system", name: "dynsecret-member-token", .object(JSONObject([
            ("data", .object(JSONObject([("token", .string(Base64.encode(Array("sa-token-7f3e".utf8))))]))),
        ])))
        r = await dynsecret(["cluster", "kubeconfig", "--kubeconfig", memberConfig, "--name", "edge-1"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("sa-token-7f3e"))
        let doc = try #require(try ManifestReader.read(Array(r.stdout.utf8), source: "stdout").first?.value)
        let secret = try Secret.decode(doc).secret
        #expect(secret.metadata.name == "edge-1-kubeconfig" && secret.metadata.namespace == "dynsecret-system")
        let config = try KubeConfigLoader.fromData(try #require(secret.data["kubeconfig"]), source: "generated")
        #expect(config.server == member.url)
        _ = try await h.create(secret)

        let policy = try dir.file("policy.yaml", """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: edge}
            spec:
              clusters:
              - {name: edge-1, kubeconfigSecret: {namespace: dynsecret-system, name: edge-1-kubeconfig}}
              rules:
              - name: pull
                source: {namespace: platform, name: regcred}
                targets: {namespaces: [team-a], clusters: [edge-1]}
            """)
        member.resetCounters()
        let once = await dynsecret(["replicate", "--policy", policy, "--kubeconfig", try dir.file("hub.kubeconfig", hub.kubeconfig(token: "hub-admin")),
                                    "--cluster-name", "hub", "--once"])
        #expect(once.code == 0, "\(once.stdout) \(once.stderr)")
        #expect(try await m.get(Secret.self, namespace: "team-a", name: "regcred").data["token"] == Array("v1".utf8))
        #expect(member.counters()["member-sa forbidden"] == nil, "deploy/member grants what a fleet run needs: \(member.counters())")
        #expect((member.counters()["member-sa create"] ?? 0) == 1)
    }
}

/// Namespaced mode: a member that grants the hub only `deploy/member/namespaced/role.yaml` in two namespaces (no
/// cluster-wide access) is written by `replicate --once` and by the controller when its policy entry lists those
/// namespaces, without one forbidden request; without the list, the cluster-wide reads are refused and reported.
@Suite(.serialized) struct NamespacedMemberTests {
    static func roleRules(in namespaces: Set<String>) throws -> [TokenGrant.Rule] {
        let path = DeployManifestTests.deploy.appendingPathComponent("member/namespaced/role.yaml").path
        let docs = try ManifestReader.read(Array(try Data(contentsOf: URL(fileURLWithPath: path))), source: path).map(\.value)
        let role = try #require(docs.first { $0["kind"]?.stringValue == "Role" })
        #expect(docs.contains { $0["kind"]?.stringValue == "RoleBinding" })
        return (role["rules"]?.arrayValue ?? []).map { rule in
            TokenGrant.Rule(verbs: Set((rule["verbs"]?.arrayValue ?? []).compactMap(\.stringValue)),
                            resources: Set((rule["resources"]?.arrayValue ?? []).compactMap(\.stringValue)), namespaces: namespaces)
        }
    }

    static func policy(namespaced: Bool) -> String {
        """
        apiVersion: dynsecret.io/v1alpha1
        kind: ReplicationPolicy
        metadata: {name: edge}
        spec:
          clusters:
          - name: edge
            kubeconfigSecret: {namespace: dynsecret-system, name: edge-kubeconfig}
        \(namespaced ? "    namespaces: [team-a, team-b]" : "")
          rules:
          - name: pull
            source: {namespace: platform, name: regcred}
            targets: {namespacePatterns: ["team-*"], clusters: [edge]}
            serviceAccounts: [default]
        """
    }

    @Test(.heavy, .enabled(if: dynsecretBinary != nil, "needs the dynsecret binary"))
    func aMemberGrantingOnlyRolesIsServedInItsNamespaces() async throws {
        var memberOptions = EmulatorOptions()
        memberOptions.tokens = [TokenGrant(token: "edge-admin", user: "admin"),
                                TokenGrant(token: "edge-sa", user: "member-sa", rules: try Self.roleRules(in: ["team-a", "team-b"]))]
        let member = try await KubeEmulator.start(memberOptions)
        let hub = try await KubeEmulator.start(EmulatorOptions())
        defer { Task { await member.stop(); await hub.stop() } }
        let m = KubeClient(config: KubeConfig(server: member.url, credentials: .token("edge-admin")))
        let h = KubeClient(config: KubeConfig(server: hub.url))
        for ns in ["team-a", "team-b", "team-c"] { _ = try await m.create(.namespaces, Fixtures.namespace(ns)) }
        for ns in ["dynsecret-system", "platform"] { _ = try await h.create(.namespaces, Fixtures.namespace(ns)) }
        _ = try await h.create(Fixtures.secret("platform", "regcred", "v1"))
        _ = try await h.create(Secret(metadata: ObjectMeta(name: "edge-kubeconfig", namespace: "dynsecret-system"),
                                      data: ["kubeconfig": Array(member.kubeconfig(token: "edge-sa").utf8)]))
        let dir = try TempDir()
        let hubConfig = try dir.file("hub.kubeconfig", hub.kubeconfig())

        // Without the namespace list the cluster-wide reads are refused: reported, exit 1, nothing written.
        let wide = try dir.file("wide.yaml", Self.policy(namespaced: false))
        var r = await dynsecret(["replicate", "--policy", wide, "--kubeconfig", hubConfig, "--cluster-name", "hub", "--once"])
        #expect(r.code == 1 && r.stdout.contains("cluster edge: error: reading the cluster:"), "\(r.stdout) \(r.stderr)")
        #expect((member.counters()["member-sa forbidden"] ?? 0) > 0)

        member.resetCounters()
        let policy = try dir.file("policy.yaml", Self.policy(namespaced: true))
        r = await dynsecret(["replicate", "--policy", policy, "--kubeconfig", hubConfig, "--cluster-name", "hub", "--once"])
        #expect(r.code == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("cluster edge: policy edge: 2 created"), "\(r.stdout)")
        #expect(try await Fixtures.replicas(m) == ["team-a/regcred": "v1", "team-b/regcred": "v1"], "team-c is not listed: never written")
        #expect(member.counters()["member-sa forbidden"] == nil, "\(member.counters())")

        // The controller in namespaced mode: per-namespace informers only.
        let ctl = try ControllerProcess(["--policy", policy, "--kubeconfig", hubConfig, "--cluster-name", "hub",
                                         "--health-addr", "127.0.0.1:0", "--metrics-addr", "off"],
                                        log: dir.url.appendingPathComponent("controller.log").path)
        defer { Task { _ = await ctl.stop() } }
        _ = try await h.mergePatch(Secret.self, namespace: "platform", name: "regcred",
                                   .object(JSONObject([("data", .object(JSONObject([("token", .string(Base64.encode(Array("v2".utf8))))])))])))
        #expect(try await waitFor(.seconds(30)) { try await Fixtures.replicas(m) == ["team-a/regcred": "v2", "team-b/regcred": "v2"] } != nil,
                "\(ctl.log.suffix(2000))")
        #expect(try await m.get(ServiceAccount.self, namespace: "team-a", name: "default").imagePullSecrets == ["regcred"])
        #expect(member.counters()["member-sa forbidden"] == nil, "the namespaced controller stays inside its Roles: \(member.counters())")
        let stop = await ctl.stop()
        #expect(stop.status == 0)
    }
}

/// A fleet policy whose pattern matches no context of the member kubeconfig has no members: the hub goes on.
@Suite(.serialized) struct EmptyFleetTests {
    @Test(.heavy, .enabled(if: dynsecretBinary != nil, "needs the dynsecret binary"))
    func aPatternMatchingNothingLeavesTheHubRunning() async throws {
        let hub = try await KubeEmulator.start(EmulatorOptions())
        defer { Task { await hub.stop() } }
        let h = KubeClient(config: KubeConfig(server: hub.url))
        for ns in ["platform", "team-a"] { _ = try await h.create(.namespaces, Fixtures.namespace(ns)) }
        _ = try await h.create(Fixtures.secret("platform", "regcred", "v1"))
        let dir = try TempDir()
        let policy = try dir.file("policy.yaml", """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: fleet}
            spec:
              clusters: [{name: gpus, contextPattern: "gpu-*"}]
              rules:
              - name: pull
                source: {namespace: platform, name: regcred}
                targets: {namespaces: [team-a], clusters: [local, gpus]}
            """)
        let members = try dir.file("members.kubeconfig", "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n")
        let ctl = try ControllerProcess(["--policy", policy, "--kubeconfig", try dir.file("hub.kubeconfig", hub.kubeconfig()), "--member-kubeconfig", members,
                                         "--cluster-name", "hub", "--health-addr", "127.0.0.1:0", "--metrics-addr", "off"],
                                        log: dir.url.appendingPathComponent("controller.log").path)
        defer { Task { _ = await ctl.stop() } }
        #expect(try await waitFor(.seconds(20)) { try await Fixtures.replicas(h) == ["team-a/regcred": "v1"] } != nil, "\(ctl.log.suffix(2000))")
        _ = try await h.mergePatch(Secret.self, namespace: "platform", name: "regcred",
                                   .object(JSONObject([("data", .object(JSONObject([("token", .string(Base64.encode(Array("v2".utf8))))])))])))
        #expect(try await waitFor(.seconds(20)) { try await Fixtures.replicas(h) == ["team-a/regcred": "v2"] } != nil, "the hub still runs: \(ctl.log.suffix(2000))")
        let port = try await ctl.port("health")
        #expect(try httpGet("http://127.0.0.1:\(port)/readyz").status == 200)
        let stop = await ctl.stop()
        #expect(stop.status == 0)
    }
}
