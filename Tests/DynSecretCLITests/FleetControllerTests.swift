import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// One controller in a hub keeping replicas current in member clusters, each its own API server with its own token:
/// members reached through a kubeconfig Secret and through member-kubeconfig contexts matched by a pattern. A
/// member's API server dies mid-change: the others converge and it is reported down; a member's kubeconfig Secret
/// is rotated (the old token revoked): the controller reconnects without a restart.
@Suite(.serialized) struct FleetControllerTests {
    static let canary = "CANARY-fleetctl-77c3e0-never-print"
    static let namespaces = (0..<30).map { "team-\($0)" }

    static func emulator(_ tokens: [String]) async throws -> KubeEmulator {
        var options = EmulatorOptions()
        options.tokens = tokens.map { TokenGrant(token: $0, user: "admin") }
        return try await KubeEmulator.start(options)
    }

    static func client(_ e: KubeEmulator, _ token: String) -> KubeClient { KubeClient(config: KubeConfig(server: e.url, credentials: .token(token))) }

    static func values(_ c: KubeClient) async throws -> [String: String] { try await Fixtures.replicas(c) }

    @Test(.heavy, .enabled(if: dynsecretBinary != nil, "needs the dynsecret binary"))
    func membersConvergeADeadOneStopsNoOtherAndARotatedKubeconfigIsUsed() async throws {
        let hub = try await Self.emulator(["hub"]), m1 = try await Self.emulator(["m1-old", "m1-new"])
        let gpu2 = try await Self.emulator(["gpu2"]), gpu3 = try await Self.emulator(["gpu3"])
        defer { Task { for e in [hub, m1, gpu2, gpu3] { await e.stop() } } }
        let h = Self.client(hub, "hub")
        let members = [("m1", Self.client(m1, "m1-new")), ("gpu-2", Self.client(gpu2, "gpu2")), ("gpu-3", Self.client(gpu3, "gpu3"))]
        for ns in ["platform", "dynsecret-system"] { _ = try await h.create(.namespaces, Fixtures.namespace(ns)) }
        try await Fixtures.createNamespaces(h, ["team-0", "team-1"], labels: ["pull": "yes"])
        for (_, c) in members { try await Fixtures.createNamespaces(c, Self.namespaces, labels: ["pull": "yes"]) }
        _ = try await h.create(Fixtures.secret("platform", "regcred", Self.canary + "-v1"))
        _ = try await h.create(Secret(metadata: ObjectMeta(name: "m1-kubeconfig", namespace: "dynsecret-system"),
                                      data: ["kubeconfig": Array(m1.kubeconfig(token: "m1-old").utf8)]))
        let dir = try TempDir()
        let memberConfig = try dir.file("members.kubeconfig", """
            apiVersion: v1
            kind: Config
            clusters:
            - {name: gpu-2, cluster: {server: "\(gpu2.url)"}}
            - {name: gpu-3, cluster: {server: "\(gpu3.url)"}}
            users:
            - {name: gpu-2, user: {token: gpu2}}
            - {name: gpu-3, user: {token: gpu3}}
            contexts:
            - {name: gpu-2, context: {cluster: gpu-2, user: gpu-2}}
            - {name: gpu-3, context: {cluster: gpu-3, user: gpu-3}}
            """)
        let policy = try dir.file("policy.yaml", """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: fleet}
            spec:
              clusters:
              - {name: m1, kubeconfigSecret: {namespace: dynsecret-system, name: m1-kubeconfig}}
              - {name: gpus, contextPattern: "gpu-*"}
              rules:
              - name: pull
                source: {namespace: platform, name: regcred}
                targets:
                  namespaceSelector: {matchLabels: {pull: "yes"}}
                  clusters: [local, m1, gpus]
            """)
        let ctl = try ControllerProcess([
            "--policy", policy, "--kubeconfig", try dir.file("hub.kubeconfig", hub.kubeconfig(token: "hub")), "--member-kubeconfig", memberConfig,
            "--cluster-name", "hub-a", "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--resync", "5m",
        ], log: dir.url.appendingPathComponent("controller.log").path)
        defer { Task { _ = await ctl.stop() } }
        let metricsPort = try await ctl.port("metrics"), healthPort = try await ctl.port("health")
        func metrics() throws -> String { try httpGet("http://127.0.0.1:\(metricsPort)/metrics").body }
        func converged(_ value: String, in clients: [KubeClient]) async throws -> Bool {
            for c in clients {
                let v = try await Self.values(c)
                guard v.count == Self.namespaces.count, v.values.allSatisfy({ $0 == value }) else { return false }
            }
            return true
        }

        let all = members.map(\.1)
        #expect(try await waitFor(.seconds(60)) { try await converged(Self.canary + "-v1", in: all) } != nil, "\(ctl.log.suffix(3000))")
        #expect(try await Self.values(h).count == 2, "the hub is a cluster of the fleet too")
        let copy = try await members[0].1.get(Secret.self, namespace: "team-7", name: "regcred")
        #expect(copy.metadata.annotations[ReplicaMarkers.sourceClusterAnnotation] == "hub-a")
        #expect(try await waitFor(.seconds(10)) {
            let m = try metrics()
            return ["m1", "gpu-2", "gpu-3"].allSatisfy { m.contains("dynsecret_cluster_up{cluster=\"\($0)\"} 1") }
        } != nil, "\((try? metrics()) ?? "")")

        // gpu-3's API server dies; the source changes: the others follow, gpu-3 is reported down, the hub stays ready.
        await gpu3.stop()
        _ = try await h.mergePatch(Secret.self, namespace: "platform", name: "regcred",
                                   .object(JSONObject([("data", .object(JSONObject([("token", .string(Base64.encode(Array((Self.canary + "-v2").utf8))))])))])))
        let live = [members[0].1, members[1].1]
        #expect(try await waitFor(.seconds(30)) { try await converged(Self.canary + "-v2", in: live) } != nil, "\(ctl.log.suffix(3000))")
        #expect(try await waitFor(.seconds(30)) { try metrics().contains("dynsecret_cluster_up{cluster=\"gpu-3\"} 0") } != nil, "\((try? metrics()) ?? "")")
        #expect(try httpGet("http://127.0.0.1:\(healthPort)/readyz").status == 200, "a dead member never makes the hub unready")
        let m = try metrics()
        #expect(m.contains("dynsecret_replicas{cluster=\"m1\",state=\"in_sync\"} 30"), "\(m)")
        #expect(m.contains("dynsecret_api_requests_total{cluster=\"gpu-2\""), "requests are counted by cluster")

        // m1's credential rotates: the Secret gets the new token, the old one is revoked.
        _ = try await h.mergePatch(Secret.self, namespace: "dynsecret-system", name: "m1-kubeconfig", .object(JSONObject([
            ("data", .object(JSONObject([("kubeconfig", .string(Base64.encode(Array(m1.kubeconfig(token: "m1-new").utf8))))]))),
        ])))
        m1.revoke(token: "m1-old")
        _ = try await h.mergePatch(Secret.self, namespace: "platform", name: "regcred",
                                   .object(JSONObject([("data", .object(JSONObject([("token", .string(Base64.encode(Array((Self.canary + "-v3").utf8))))])))])))
        #expect(try await waitFor(.seconds(30)) { try await converged(Self.canary + "-v3", in: live) } != nil, "\(ctl.log.suffix(3000))")
        #expect(ctl.log.contains("member cluster kubeconfig changed; reconnecting"))

        let log = ctl.log, exposition = try metrics()
        for text in [log, exposition] { #expect(!text.contains(Self.canary) && !text.contains(Base64.encode(Array(Self.canary.utf8)))) }
        #expect(!log.contains("m1-new") && !log.contains("m1-old"), "tokens never logged")
        let stop = await ctl.stop()
        #expect(stop.status == 0, "\(log.suffix(2000))")
    }
}
