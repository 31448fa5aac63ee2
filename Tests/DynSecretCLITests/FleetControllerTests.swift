import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// One controller in a hub keeping replicas current in five member clusters, each its own API server with its own
/// CA and token (a tenth of the issue's 300 namespaces per member): members reached through a kubeconfig Secret and
/// through member-kubeconfig contexts matched by a pattern; kubectl checks every member. A member's API server dies
/// mid-change: the others converge and it is reported down; a member whose token may not create Secrets (403) is
/// reported and blocks nobody; a member's kubeconfig Secret is rotated (the old token revoked): the controller
/// reconnects without a restart; a second hub writing to a shared member never takes the first hub's replicas.
@Suite(.serialized) struct FleetControllerTests {
    static let canary = "CANARY-fleetctl-77c3e0-never-print"
    static let namespaces = (0..<30).map { "team-\($0)" }

    /// A member API server over TLS with its own CA.
    struct Member {
        let name: String
        let emulator: KubeEmulator
        let ca: [UInt8]
        let token: String
        var client: KubeClient {
            var config = KubeConfig(server: emulator.url, credentials: .token(token))
            config.transport.caPEM = ca
            return KubeClient(config: config)
        }
    }

    static func member(_ name: String, tokens: [TokenGrant], admin: String, in dir: TempDir) async throws -> Member {
        let certs = try TempDir()
        try loopbackServerCertificate(in: certs)
        var options = EmulatorOptions()
        options.tokens = tokens + [TokenGrant(token: admin, user: "admin")]
        options.tlsCertificatePath = certs.url.appendingPathComponent("server.crt").path
        options.tlsKeyPath = certs.url.appendingPathComponent("server.key").path
        let e = try await KubeEmulator.start(options)
        return Member(name: name, emulator: e, ca: Array(try Data(contentsOf: certs.url.appendingPathComponent("ca.crt"))), token: admin)
    }

    static func plain(_ token: String) async throws -> KubeEmulator {
        var options = EmulatorOptions()
        options.tokens = [TokenGrant(token: token, user: "admin")]
        return try await KubeEmulator.start(options)
    }

    static func setSource(_ c: KubeClient, _ value: String) async throws {
        _ = try await c.mergePatch(Secret.self, namespace: "platform", name: "regcred",
                                   .object(JSONObject([("data", .object(JSONObject([("token", .string(Base64.encode(Array(value.utf8))))])))])))
    }

    /// `KIND: user, token` entries and contexts of a member kubeconfig for `members`, each with its CA.
    static func memberKubeconfig(_ members: [(Member, String)]) -> String {
        var out = "apiVersion: v1\nkind: Config\nclusters:\n"
        for (m, _) in members { out += "- {name: \(m.name), cluster: {server: \"\(m.emulator.url)\", certificate-authority-data: \(Base64.encode(m.ca))}}\n" }
        out += "users:\n"
        for (m, token) in members { out += "- {name: \(m.name), user: {token: \(token)}}\n" }
        out += "contexts:\n"
        for (m, _) in members { out += "- {name: \(m.name), context: {cluster: \(m.name), user: \(m.name)}}\n" }
        return out
    }

    @Test(.heavy, .enabled(if: dynsecretBinary != nil && kubectlPath != nil, "needs the dynsecret binary and kubectl"))
    func fiveMembersOneDeadOneForbiddenARotationAndASecondHub() async throws {
        let dir = try TempDir()
        let memberRules = try MemberRegistrationTests.memberRules()
        // gpu-4's token may do everything but create Secrets.
        let noCreate = memberRules.map { r in TokenGrant.Rule(verbs: r.resources.contains("secrets") ? r.verbs.subtracting(["create"]) : r.verbs, resources: r.resources) }
        let m1 = try await Self.member("m1", tokens: [TokenGrant(token: "m1-old", user: "hub", rules: memberRules), TokenGrant(token: "m1-new", user: "hub", rules: memberRules)],
                                       admin: "m1-admin", in: dir)
        var gpus: [Member] = []
        for i in 2...5 {
            gpus.append(try await Self.member("gpu-\(i)", tokens: [TokenGrant(token: "gpu\(i)", user: "hub", rules: i == 4 ? noCreate : memberRules),
                                                                    TokenGrant(token: "gpu\(i)-b", user: "hub-b", rules: memberRules)],
                                              admin: "gpu\(i)-admin", in: dir))
        }
        let members = [m1] + gpus
        let hub = try await Self.plain("hub"), hubB = try await Self.plain("hub-b")
        defer { Task { for e in [hub, hubB] + members.map(\.emulator) { await e.stop() } } }
        let h = KubeClient(config: KubeConfig(server: hub.url, credentials: .token("hub")))
        let hb = KubeClient(config: KubeConfig(server: hubB.url, credentials: .token("hub-b")))
        for c in [h, hb] {
            for ns in ["platform", "dynsecret-system"] { _ = try await c.create(.namespaces, Fixtures.namespace(ns)) }
        }
        try await Fixtures.createNamespaces(h, ["team-0", "team-1"], labels: ["pull": "yes"])
        for m in members { try await Fixtures.createNamespaces(m.client, Self.namespaces, labels: ["pull": "yes"]) }
        _ = try await h.create(Fixtures.secret("platform", "regcred", Self.canary + "-v1"))
        _ = try await hb.create(Fixtures.secret("platform", "regcred", Self.canary + "-hub-b"))
        _ = try await h.create(Secret(metadata: ObjectMeta(name: "m1-kubeconfig", namespace: "dynsecret-system"),
                                      data: ["kubeconfig": Array(m1.emulator.kubeconfig(token: "m1-old", caPEM: m1.ca).utf8)]))
        let policy = try dir.file("policy.yaml", """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: fleet}
            spec:
              clusters:
              - {name: m1, kubeconfigSecret: {namespace: dynsecret-system, name: m1-kubeconfig}}
              - {name: gpus, contextPattern: "gpu-*"}
              # A name the pattern already yields: an error, and never a second replication (here: into m1).
              - {name: gpu-2, kubeconfigSecret: {namespace: dynsecret-system, name: m1-kubeconfig}}
              rules:
              - name: pull
                source: {namespace: platform, name: regcred}
                targets:
                  namespaceSelector: {matchLabels: {pull: "yes"}}
                  clusters: [local, m1, gpus]
            """)
        let ctl = try ControllerProcess([
            "--policy", policy, "--kubeconfig", try dir.file("hub.kubeconfig", hub.kubeconfig(token: "hub")),
            "--member-kubeconfig", try dir.file("members.kubeconfig", Self.memberKubeconfig(gpus.map { ($0, "gpu" + $0.name.dropFirst(4)) })),
            "--cluster-name", "hub-a", "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
        ], log: dir.url.appendingPathComponent("controller.log").path)
        defer { Task { _ = await ctl.stop() } }
        let metricsPort = try await ctl.port("metrics"), healthPort = try await ctl.port("health")
        func metrics() -> String { (try? httpGet("http://127.0.0.1:\(metricsPort)/metrics").body) ?? "" }

        /// Replica name → value in a member, read with kubectl over TLS with the member's CA.
        func kubectlReplicas(_ m: Member) throws -> [String: String] {
            let config = try dir.file("kubectl-\(m.name)", m.emulator.kubeconfig(token: m.token, caPEM: m.ca))
            let r = try runProcess(kubectlPath!, ["--kubeconfig", config, "get", "secrets", "-A", "-l", "dynsecret.io/replica=true", "-o",
                                                  #"jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}={.data.token}|{.metadata.annotations.dynsecret\.io/source-cluster}{"\n"}{end}"#])
            guard r.code == 0 else { throw TestFailure("kubectl \(m.name): \(r.stderr)") }
            var out: [String: String] = [:]
            for line in r.stdout.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let valueAndHub = parts[1].split(separator: "|", omittingEmptySubsequences: false)
                let value = Base64.decode(String(valueAndHub[0])).map { String(decoding: $0, as: UTF8.self) } ?? "?"
                out[String(parts[0])] = value + "@" + (valueAndHub.count > 1 ? String(valueAndHub[1]) : "")
            }
            return out
        }
        func converged(_ value: String, _ ms: [Member]) throws -> Bool {
            try ms.allSatisfy { m in
                let v = try kubectlReplicas(m)
                return v.count == Self.namespaces.count && v.values.allSatisfy { $0 == value + "@hub-a" }
            }
        }

        let writable = [m1, gpus[0], gpus[1], gpus[3]]
        #expect(try await waitFor(.seconds(60)) { try converged(Self.canary + "-v1", writable) } != nil, "\(ctl.log.suffix(3000))")
        #expect(try await Fixtures.replicas(h).count == 2, "the hub is a cluster of the fleet too")
        #expect(await waitFor(.seconds(10)) { ["m1", "gpu-2", "gpu-3", "gpu-5"].allSatisfy { metrics().contains("dynsecret_cluster_up{cluster=\"\($0)\"} 1") } } != nil, "\(metrics())")

        let started = ctl.log.split(separator: "\n").filter { $0.contains("member cluster started") }
        #expect(started.count == 5 && started.filter { $0.contains("gpu-2") }.count == 1, "\(started)")
        #expect(ctl.log.contains("member cluster not started") && ctl.log.contains("is given twice"))

        // gpu-4 may not create Secrets: reported (metrics, an Event on the source naming it), nothing else held up.
        #expect(try kubectlReplicas(gpus[2]).isEmpty)
        #expect(await waitFor(.seconds(20)) { metrics().contains("dynsecret_api_requests_total{cluster=\"gpu-4\",verb=\"POST\",code=\"403\"}") } != nil, "\(metrics())")
        #expect(await waitFor(.seconds(20)) { metrics().range(of: #"dynsecret_replicas\{cluster="gpu-4",state="failed"\} [1-9]"#, options: .regularExpression) != nil } != nil, "\(metrics())")
        let events = try await h.list(Event.self, namespace: "platform").items.filter { $0.reason == "ReplicationFailed" }
        #expect(events.contains { $0.message.hasPrefix("cluster gpu-4: create secret team-") && $0.message.contains("HTTP 403") }, "\(events.map(\.message))")

        // A second hub (its own source) with the same policy name, reaching gpu-5: it must not take hub-a's replicas.
        let policyB = try dir.file("policy-b.yaml", """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: fleet}
            spec:
              clusters:
              - {name: shared, context: gpu-5}
              rules:
              - name: pull
                source: {namespace: platform, name: regcred}
                targets:
                  namespaceSelector: {matchLabels: {pull: "yes"}}
                  clusters: [shared]
            """)
        let before = try await gpus[3].client.list(Secret.self, namespace: nil, options: ListOptions(labelSelector: "dynsecret.io/replica=true")).items
        let ctlB = try ControllerProcess([
            "--policy", policyB, "--kubeconfig", try dir.file("hub-b.kubeconfig", hubB.kubeconfig(token: "hub-b")),
            "--member-kubeconfig", try dir.file("members-b.kubeconfig", Self.memberKubeconfig([(gpus[3], "gpu5-b")])),
            "--cluster-name", "hub-b", "--health-addr", "127.0.0.1:0", "--metrics-addr", "off",
        ], log: dir.url.appendingPathComponent("controller-b.log").path)
        defer { Task { _ = await ctlB.stop() } }
        // Its conflicts are Events on its own source, naming the member (by hub-b's name for it) and the hub that owns
        // the replica.
        #expect(try await waitFor(.seconds(30)) {
            try await hb.list(Event.self, namespace: "platform").items.filter {
                $0.reason == "ReplicaConflict" && $0.message.hasPrefix("cluster shared: team-") && $0.message.contains("is a replica written by hub hub-a; left alone")
            }.count == Self.namespaces.count
        } != nil, "\(ctlB.log.suffix(2000))")

        // gpu-3's API server dies; the source changes: the others follow, gpu-3 is reported down, the hub stays ready.
        await gpus[1].emulator.pause()
        try await Self.setSource(h, Self.canary + "-v2")
        let live = [m1, gpus[0], gpus[3]]
        #expect(try await waitFor(.seconds(30)) { try converged(Self.canary + "-v2", live) } != nil, "\(ctl.log.suffix(3000))")
        #expect(await waitFor(.seconds(30)) { metrics().contains("dynsecret_cluster_up{cluster=\"gpu-3\"} 0") } != nil, "\(metrics())")
        #expect(try httpGet("http://127.0.0.1:\(healthPort)/readyz").status == 200, "a dead member never makes the hub unready")
        #expect(metrics().contains("dynsecret_replicas{cluster=\"m1\",state=\"in_sync\"} 30"), "\(metrics())")
        // hub-b never overwrote, recreated or pruned hub-a's replicas in gpu-5.
        let after = try await gpus[3].client.list(Secret.self, namespace: nil, options: ListOptions(labelSelector: "dynsecret.io/replica=true")).items
        #expect(after.count == before.count && after.allSatisfy { $0.metadata.annotations[ReplicaMarkers.sourceClusterAnnotation] == "hub-a" })
        #expect(Set(after.map { $0.metadata.uid ?? "" }) == Set(before.map { $0.metadata.uid ?? "" }))
        #expect(Fixtures.writes(gpus[3].emulator.counters(), by: "hub-b") == 0, "hub-b wrote nothing to hub-a's replicas: \(gpus[3].emulator.counters())")

        // gpu-3 comes back (its objects kept, as an API server restarted on its etcd): it converges without a
        // restart of the controller and is reported up again.
        try await gpus[1].emulator.resume()
        #expect(try await waitFor(.seconds(60)) { try converged(Self.canary + "-v2", [gpus[1]]) } != nil, "\(ctl.log.suffix(3000))")
        #expect(await waitFor(.seconds(30)) { metrics().contains("dynsecret_cluster_up{cluster=\"gpu-3\"} 1") } != nil, "\(metrics())")

        // m1's credential rotates: the Secret gets the new token, the old one is revoked.
        _ = try await h.mergePatch(Secret.self, namespace: "dynsecret-system", name: "m1-kubeconfig", .object(JSONObject([
            ("data", .object(JSONObject([("kubeconfig", .string(Base64.encode(Array(m1.emulator.kubeconfig(token: "m1-new", caPEM: m1.ca).utf8))))]))),
        ])))
        m1.emulator.revoke(token: "m1-old")
        try await Self.setSource(h, Self.canary + "-v3")
        #expect(try await waitFor(.seconds(30)) { try converged(Self.canary + "-v3", [m1]) } != nil, "\(ctl.log.suffix(3000))")
        #expect(ctl.log.contains("member cluster kubeconfig changed; reconnecting"))

        let log = ctl.log, exposition = metrics()
        for text in [log, ctlB.log, exposition] + events.map(\.message) {
            #expect(!text.contains(Self.canary) && !text.contains(Base64.encode(Array(Self.canary.utf8))))
        }
        #expect(!log.contains("m1-new") && !log.contains("m1-old"), "tokens never logged")
        let stopB = await ctlB.stop()
        let stop = await ctl.stop()
        #expect(stop.status == 0 && stopB.status == 0, "\(log.suffix(2000))")
    }
}
