import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// `dynsecret controller` as a process against the in-process emulator: convergence, new and unlabelled namespaces,
/// source changes over 1,000 replicas, foreign Secrets, retain on source delete with `store restore`, metrics,
/// no secret value anywhere, SIGTERM.
@Suite(.serialized) struct ControllerE2ETests {
    static let admin = "ctl-e2e-admin"
    static let controllerToken = "ctl-e2e-controller"
    static let canary = "CANARY-controller-5f2c81-never-print"

    static let policy = """
        apiVersion: dynsecret.io/v1alpha1
        kind: ReplicationPolicy
        metadata: {name: pull}
        spec:
          rules:
          - name: registry
            source: {namespace: platform, name: pull}
            targets:
              namespaceSelector: {matchLabels: {dynsecret: "on"}}
            serviceAccounts: [builder]
        """

    struct Setup {
        let emulator: KubeEmulator
        let client: KubeClient
        let dir: TempDir
        let kubeconfig: String
        let adminKubeconfig: String
        let policy: String
        let keyring: String
        let store: String
    }

    static func setup(namespaces: Int, tokens extra: [TokenGrant] = []) async throws -> Setup {
        var options = EmulatorOptions()
        options.tokens = [TokenGrant(token: admin, user: "admin"), TokenGrant(token: controllerToken, user: "controller")] + extra
        let e = try await KubeEmulator.start(options)
        let c = KubeClient(config: KubeConfig(server: e.url, credentials: .token(admin)), maxConcurrentRequests: 16)
        _ = try await c.create(.namespaces, Fixtures.namespace("platform"))
        _ = try await c.create(Fixtures.secret("platform", "pull", canary + "-v1"))
        try await Fixtures.createNamespaces(c, (0..<namespaces).map { String(format: "team-%04d", $0) }, labels: ["dynsecret": "on"])
        _ = try await c.create(.namespaces, Fixtures.namespace("quiet"))
        let dir = try TempDir()
        let kc = try dir.file("kubeconfig", e.kubeconfig(token: controllerToken))
        let akc = try dir.file("admin-kubeconfig", e.kubeconfig(token: admin))
        let policy = try dir.file("policy.yaml", Self.policy)
        let keyring = dir.url.appendingPathComponent("keyring.yaml").path
        let gen = await dynsecret(["keys", "generate", "--keyring", keyring])
        guard gen.code == 0 else { throw TestFailure("keys generate: \(gen.stderr)") }
        return Setup(emulator: e, client: c, dir: dir, kubeconfig: kc, adminKubeconfig: akc, policy: policy, keyring: keyring,
                     store: dir.url.appendingPathComponent("store").path)
    }

    @Test(.exclusive) func lifecycleOverAThousandNamespaces() async throws {
        let s = try await Self.setup(namespaces: 1000)
        defer { Task { await s.emulator.stop() } }
        let c = s.client
        _ = try await c.create(ServiceAccount(metadata: ObjectMeta(name: "builder", namespace: "team-0001"), imagePullSecrets: ["other"]))

        let ctl = try ControllerProcess([
            "--policy", s.policy, "--kubeconfig", s.kubeconfig, "--store", s.store, "--keyring", s.keyring,
            "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--leader-elect",
            "--leader-election-namespace", "platform", "--workers", "8", "--log-format", "json", "--policy-poll", "200ms",
        ], log: s.dir.url.appendingPathComponent("controller.log").path)
        let watch = try await ReplicaWatch(c)
        defer { watch.stop() }
        let health = try await ctl.port("health")
        let metricsPort = try await ctl.port("metrics")

        // Initial convergence: every labelled namespace gets its replica; the unlabelled one does not.
        let converged = await waitFor(.seconds(60)) { watch.current.count == 1000 }
        let count = try await Fixtures.replicas(c).count
        #expect(converged != nil, "initial convergence: \(count) of 1000 replicas\n\(ctl.log.suffix(3000))")
        let first = try await Fixtures.replicas(c)
        print("controller e2e: initial convergence of 1,000 replicas in \(converged ?? .zero) (from process start: \(ContinuousClock.now - ctl.started))")
        #expect(first.values.allSatisfy { $0 == Self.canary + "-v1" })
        #expect(first["quiet/pull"] == nil)
        #expect(try httpGet("http://127.0.0.1:\(health)/readyz").status == 200)
        #expect(try httpGet("http://127.0.0.1:\(health)/healthz").status == 200)
        let sa = try await c.get(ServiceAccount.self, namespace: "team-0001", name: "builder")
        #expect(sa.imagePullSecrets == ["other", "pull"])

        // A namespace that gets the label gets its replica within 2 s.
        _ = try await c.create(.namespaces, Fixtures.namespace("late"))
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await Fixtures.replicas(c)["late/pull"] == nil)
        try await Fixtures.label(c, "late", true)
        let labelled = await waitFor(.seconds(10), every: .milliseconds(10)) { watch.current["late/pull"] != nil }
        #expect(labelled != nil && labelled! < .seconds(2), "newly labelled namespace took \(String(describing: labelled))")
        print("controller e2e: newly labelled namespace got its replica in \(labelled ?? .zero)")

        // A source change reaches all 1,001 replicas within 5 s.
        var src = try await c.get(Secret.self, namespace: "platform", name: "pull")
        src.data["token"] = Array((Self.canary + "-v2").utf8)
        _ = try await c.update(src)
        let propagated = await waitFor(.seconds(30), every: .milliseconds(20)) {
            let r = watch.current
            return r.count == 1001 && r.values.allSatisfy { $0 == Self.canary + "-v2" }
        }
        #expect(try await Fixtures.replicas(c).values.allSatisfy { $0 == Self.canary + "-v2" })
        #expect(propagated != nil && propagated! < .seconds(5), "source change took \(String(describing: propagated)) for 1,001 replicas")
        print("controller e2e: source change reached all 1,001 replicas in \(propagated ?? .zero)")

        // A namespace losing its label loses its replica.
        try await Fixtures.label(c, "late", false)
        let pruned = try await waitFor(.seconds(10)) { try await Fixtures.replicas(c)["late/pull"] == nil }
        #expect(pruned != nil, "replica in the unlabelled namespace was not pruned")

        // A foreign Secret at the target name is left alone, and an Event on the source says so.
        _ = try await c.create(.namespaces, Fixtures.namespace("foreign"))
        let foreign = try await c.create(Fixtures.secret("foreign", "pull", "not-ours"))
        try await Fixtures.label(c, "foreign", true)
        let evented = try await waitFor(.seconds(10)) {
            try await c.list(.events, namespace: "platform").items.contains { $0["reason"]?.stringValue == "ReplicaConflict" && ($0["message"]?.stringValue ?? "").contains("foreign/pull") }
        }
        #expect(evented != nil, "no ReplicaConflict Event on the source")
        let after = try await c.get(Secret.self, namespace: "foreign", name: "pull")
        #expect(after.metadata.resourceVersion == foreign.metadata.resourceVersion)
        #expect(after.data["token"] == Array("not-ours".utf8))
        let events = try await c.list(.events, namespace: "platform").items
        let conflict = events.first { $0["reason"]?.stringValue == "ReplicaConflict" }
        #expect(conflict?["involvedObject"]?["name"]?.stringValue == "pull")
        #expect(conflict?["involvedObject"]?["kind"]?.stringValue == "Secret")
        #expect(conflict?["type"]?.stringValue == "Warning")

        // Deleting the source leaves the replicas (onSourceDelete: retain); the store brings the source back.
        let reconciled = try metricValue(metricsPort, "dynsecret_reconciles_total{result=\"success\"}")
        try await c.delete(Secret.self, namespace: "platform", name: "pull")
        // The deletion queues every namespace: wait until they were all reconciled without the source.
        let swept = try await waitFor(.seconds(30), every: .milliseconds(100)) {
            try metricValue(metricsPort, "dynsecret_reconciles_total{result=\"success\"}") >= reconciled + 1001
        }
        #expect(swept != nil, "the namespaces were not reconciled after the source was deleted")
        let retained = try await Fixtures.replicas(c)
        #expect(retained.count == 1000, "replicas after the source was deleted: \(retained.count)")
        #expect(retained.values.allSatisfy { $0 == Self.canary + "-v2" })
        let restore = await dynsecret(["store", "restore", "--store", s.store, "--keyring", s.keyring, "-n", "platform", "--name", "pull",
                                       "--apply", "--kubeconfig", s.adminKubeconfig])
        #expect(restore.code == 0, "\(restore.stderr)")
        #expect(!restore.stdout.contains(Self.canary) && !restore.stderr.contains(Self.canary))
        let back = try await c.get(Secret.self, namespace: "platform", name: "pull")
        #expect(back.data["token"] == Array((Self.canary + "-v2").utf8))
        // The restored source is a new object (new uid): the replicas are updated to name it in dynsecret.io/source-uid.
        let relinked = try await waitFor(.seconds(20), every: .milliseconds(100)) {
            try await c.list(Secret.self, namespace: nil, options: ListOptions(labelSelector: "dynsecret.io/replica=true")).items
                .allSatisfy { $0.metadata.annotations["dynsecret.io/source-uid"] == back.metadata.uid }
        }
        #expect(relinked != nil)

        // Metrics: parse with a real Prometheus parser when one is installed; always check the families we promise.
        let metrics = try httpGet("http://127.0.0.1:\(metricsPort)/metrics")
        #expect(metrics.status == 200)
        for family in ["dynsecret_reconciles_total", "dynsecret_reconcile_duration_seconds_bucket", "dynsecret_api_requests_total",
                       "dynsecret_replicas{cluster=\"local\",state=\"in_sync\"}", "dynsecret_conflicts_total", "dynsecret_policy_errors_total",
                       "dynsecret_store_records", "dynsecret_leader 1", "dynsecret_writes_total{kind=\"create\"}"] {
            #expect(metrics.body.contains(family), "missing \(family)")
        }
        let metricsFile = try s.dir.file("metrics.txt", metrics.body)
        try checkPrometheusText(metricsFile)

        // No secret value in the log, the Events or the metrics.
        let allEvents = String(decoding: GoJSONWriter.compact(.array(try await c.list(.events, namespace: nil).items)), as: UTF8.self)
        let base64 = Base64.encode(Array((Self.canary + "-v2").utf8))
        for (what, text) in [("log", ctl.log), ("events", allEvents), ("metrics", metrics.body)] {
            #expect(!text.contains("CANARY-controller"), "a secret value leaked into the \(what)")
            #expect(!text.contains(base64), "a base64 secret value leaked into the \(what)")
        }
        // The log is JSON lines.
        for line in ctl.log.split(separator: "\n") {
            #expect((try? JSONParser.parse(Array(line.utf8)))?["msg"] != nil, "not a JSON log line: \(line.prefix(200))")
        }

        // SIGTERM: exit 0 within 10 s, the Lease released.
        let (status, took) = await ctl.stop(SIGTERM)
        #expect(status == 0, "exit status \(status): \(ctl.log.suffix(2000))")
        #expect(took < .seconds(10))
        let lease = try await c.get(Lease.self, namespace: "platform", name: "dynsecret-controller")
        #expect(lease.holderIdentity == "")
    }

    /// A namespace that gets the label costs exactly the writes it needs (one create, one ServiceAccount patch): the
    /// reconcile that follows the controller's own writes plans from what it wrote, not from a cache the watch has
    /// not updated yet (which would repeat the patch and meet a 409 Conflict).
    @Test func newNamespacesCostOnlyTheirWrites() async throws {
        let s = try await Self.setup(namespaces: 3)
        defer { Task { await s.emulator.stop() } }
        let c = s.client
        let ctl = try ControllerProcess([
            "--policy", s.policy, "--kubeconfig", s.kubeconfig, "--health-addr", "127.0.0.1:0", "--metrics-addr", "off",
        ], log: s.dir.url.appendingPathComponent("controller.log").path)
        _ = try await ctl.port("health")
        #expect(try await waitFor(.seconds(20)) { try await Fixtures.replicas(c).count == 3 } != nil)
        let before = s.emulator.counters()
        let names = (0..<10).map { "new-\($0)" }
        for ns in names {
            _ = try await c.create(.namespaces, Fixtures.namespace(ns))
            _ = try await c.create(ServiceAccount(metadata: ObjectMeta(name: "builder", namespace: ns), imagePullSecrets: ["other"]))
            try await Fixtures.label(c, ns, true)
            let done = try await waitFor(.seconds(10), every: .milliseconds(10)) {
                try await c.get(ServiceAccount.self, namespace: ns, name: "builder").imagePullSecrets == ["other", "pull"]
            }
            #expect(done != nil, "\(ns): ServiceAccount not patched")
        }
        // Give follow-up reconciles time to run (and to write, if they would).
        try await Task.sleep(for: .seconds(1))
        let after = s.emulator.counters()
        func delta(_ verb: String) -> Int { (after["controller \(verb)"] ?? 0) - (before["controller \(verb)"] ?? 0) }
        #expect(delta("create") == names.count && delta("patch") == names.count && delta("update") == 0 && delta("delete") == 0,
                "writes for \(names.count) namespaces: create \(delta("create")), patch \(delta("patch")), update \(delta("update")), delete \(delta("delete"))")
        #expect(!ctl.log.contains("write failed"), "\(ctl.log.suffix(3000))")
        // A replica deleted by someone right after the controller created it comes back at once (waiting to see its
        // own writes never holds a namespace the full 2 s when an event has answered the wait).
        _ = try await c.create(.namespaces, Fixtures.namespace("new-late"))
        _ = try await c.create(ServiceAccount(metadata: ObjectMeta(name: "builder", namespace: "new-late")))
        try await Fixtures.label(c, "new-late", true)
        let created = try await waitFor(.seconds(10), every: .milliseconds(2)) { try await Fixtures.replicas(c)["new-late/pull"] != nil }
        #expect(created != nil)
        try await c.delete(Secret.self, namespace: "new-late", name: "pull")
        let restored = try await waitFor(.seconds(10), every: .milliseconds(10)) { try await Fixtures.replicas(c)["new-late/pull"] != nil }
        #expect(restored != nil && restored! < .milliseconds(1500), "a deleted replica came back after \(String(describing: restored))")
        #expect(await ctl.stop(SIGTERM).status == 0)
    }

    /// The controller caches only a hash of each replica's stored content, never its data: a replica whose data is
    /// edited by hand (markers and content-hash annotation left as they were) is still seen to differ and restored; a
    /// key added by hand is removed; fields the replica gained elsewhere (a label, an annotation, a finalizer) stay,
    /// because an update is a merge patch of what changes, guarded by resourceVersion. A foreign Secret at the target
    /// name of a newly labelled namespace is left exactly as it was.
    @Test func handEditedDataIsDriftAndGainedFieldsStay() async throws {
        let s = try await Self.setup(namespaces: 3)
        defer { Task { await s.emulator.stop() } }
        let c = s.client
        let ctl = try ControllerProcess(["--policy", s.policy, "--kubeconfig", s.kubeconfig, "--health-addr", "127.0.0.1:0", "--metrics-addr", "off"],
                                        log: s.dir.url.appendingPathComponent("controller.log").path)
        _ = try await ctl.port("health")
        #expect(try await waitFor(.seconds(20)) { try await Fixtures.replicas(c).count == 3 } != nil, "\(ctl.log.suffix(2000))")
        let want = Array((Self.canary + "-v1").utf8)

        var edited = try await c.get(Secret.self, namespace: "team-0000", name: "pull")
        let hashBefore = edited.metadata.annotations[ReplicaMarkers.contentHashAnnotation]
        edited.data["token"] = Array("edited-by-hand".utf8)
        edited.metadata.labels["team"] = "a"
        edited.metadata.annotations["note"] = "kept"
        edited.metadata.finalizers = ["example.com/keep"]
        _ = try await c.update(edited)
        var extra = try await c.get(Secret.self, namespace: "team-0001", name: "pull")
        extra.data["added"] = Array("by-hand".utf8)
        _ = try await c.update(extra)

        let restored = try await waitFor(.seconds(10)) {
            let a = try await c.get(Secret.self, namespace: "team-0000", name: "pull")
            let b = try await c.get(Secret.self, namespace: "team-0001", name: "pull")
            return a.data == ["token": want] && b.data == ["token": want]
        }
        #expect(restored != nil, "\(ctl.log.suffix(2000))")
        let a = try await c.get(Secret.self, namespace: "team-0000", name: "pull")
        #expect(a.metadata.labels["team"] == "a" && a.metadata.annotations["note"] == "kept" && a.metadata.finalizers == ["example.com/keep"])
        #expect(a.metadata.annotations[ReplicaMarkers.contentHashAnnotation] == hashBefore)

        // A foreign Secret where a new target's replica would go: the create meets it, nothing is written over.
        _ = try await c.create(.namespaces, Fixtures.namespace("late"))
        let foreign = try await c.create(Fixtures.secret("late", "pull", "foreign-value"))
        let before = s.emulator.counters()
        try await Fixtures.label(c, "late", true)
        let reported = try await waitFor(.seconds(10)) {
            try await c.list(.events, namespace: "platform").items.contains { $0["reason"]?.stringValue == "ReplicaConflict" }
        }
        #expect(reported != nil, "\(ctl.log.suffix(2000))")
        let after = try await c.get(Secret.self, namespace: "late", name: "pull")
        #expect(after.metadata.resourceVersion == foreign.metadata.resourceVersion && after.data == foreign.data)
        try await Task.sleep(for: .milliseconds(500))
        let counters = s.emulator.counters()
        func delta(_ verb: String) -> Int { (counters["controller \(verb)"] ?? 0) - (before["controller \(verb)"] ?? 0) }
        #expect(delta("update") == 0 && delta("delete") == 0 && delta("patch") == 0, "the foreign Secret was written: \(counters)")
        #expect(!ctl.log.contains("write failed"), "\(ctl.log.suffix(3000))")
        #expect(await ctl.stop(SIGTERM).status == 0)
    }

    /// A running controller whose token is revoked: a warning within 5 s, `/readyz` 503 within 10 s (and
    /// `dynsecret_ready 0` with the failures counted), back to 200 and the pending change applied once the token is
    /// accepted again. The token never appears in the log.
    @Test func revokedTokenMakesTheControllerUnready() async throws {
        let s = try await Self.setup(namespaces: 3)
        defer { Task { await s.emulator.stop() } }
        let c = s.client
        let ctl = try ControllerProcess(["--policy", s.policy, "--kubeconfig", s.kubeconfig, "--health-addr", "127.0.0.1:0",
                                         "--metrics-addr", "127.0.0.1:0"],
                                        log: s.dir.url.appendingPathComponent("controller.log").path)
        let health = try await ctl.port("health")
        #expect(try await waitFor(.seconds(20)) { try await Fixtures.replicas(c).count == 3 } != nil, "\(ctl.log.suffix(2000))")
        #expect(try await waitFor(.seconds(5)) { try httpGet("http://127.0.0.1:\(health)/readyz").status == 200 } != nil)

        s.emulator.revoke(token: Self.controllerToken)
        var src = try await c.get(Secret.self, namespace: "platform", name: "pull")
        src.data["token"] = Array((Self.canary + "-v2").utf8)
        _ = try await c.update(src)
        let warned = await waitFor(.seconds(5)) { ctl.log.contains("refuses the controller's credentials") }
        #expect(warned != nil, "no warning within 5 s: \(ctl.log.suffix(2000))")
        let unready = try await waitFor(.seconds(10), every: .milliseconds(200)) {
            try httpGet("http://127.0.0.1:\(health)/readyz").status == 503
        }
        #expect(unready != nil, "still ready 10 s after the token was revoked")
        let body = try httpGet("http://127.0.0.1:\(health)/readyz").body
        #expect(body.contains("401"), "\(body)")
        let metrics = try await ctl.port("metrics")
        #expect(try httpGet("http://127.0.0.1:\(metrics)/metrics").body.contains("dynsecret_ready 0"))
        #expect(try metricValue(metrics, "dynsecret_api_auth_failures_consecutive") >= 1)
        let lastWrite = try metricValue(metrics, "dynsecret_last_successful_write_timestamp_seconds")
        #expect(lastWrite > 0 && lastWrite <= Date().timeIntervalSince1970)
        // One warning line for the burst, not one per request.
        let lines = ctl.log.split(separator: "\n").filter { $0.contains("refuses the controller's credentials") }
        #expect(lines.count == 1, "\(lines)")
        #expect(lines.first?.contains(s.emulator.url) == true, "the line names the server: \(lines)")

        s.emulator.grant(TokenGrant(token: Self.controllerToken, user: "controller"))
        let ready = try await waitFor(.seconds(15), every: .milliseconds(200)) {
            try httpGet("http://127.0.0.1:\(health)/readyz").status == 200
        }
        #expect(ready != nil, "not ready again after the token was restored: \(ctl.log.suffix(2000))")
        let applied = try await waitFor(.seconds(10)) { try await Fixtures.replicas(c).values.allSatisfy { $0 == Self.canary + "-v2" } }
        #expect(applied != nil, "the pending change was not applied after recovery: \(ctl.log.suffix(2000))")
        #expect(!ctl.log.contains(Self.controllerToken) && !ctl.log.contains(Self.canary), "a credential or a secret value in the log")
        #expect(await ctl.stop(SIGTERM).status == 0)
    }

    /// A controller started with a token the API server does not accept says so at once, at warning, and
    /// `/readyz` says why.
    @Test func wrongTokenAtStartIsLoggedAndExplained() async throws {
        let s = try await Self.setup(namespaces: 1)
        defer { Task { await s.emulator.stop() } }
        let wrong = "ctl-e2e-not-a-valid-token"
        let kc = try s.dir.file("wrong-kubeconfig", s.emulator.kubeconfig(token: wrong))
        let ctl = try ControllerProcess(["--policy", s.policy, "--kubeconfig", kc, "--health-addr", "127.0.0.1:0", "--metrics-addr", "off"],
                                        log: s.dir.url.appendingPathComponent("controller.log").path)
        let health = try await ctl.port("health")
        let warned = await waitFor(.seconds(5)) { ctl.log.contains("refuses the controller's credentials") }
        #expect(warned != nil, "no warning within 5 s: \(ctl.log.suffix(2000))")
        let explained = try await waitFor(.seconds(10), every: .milliseconds(200)) {
            let r = try httpGet("http://127.0.0.1:\(health)/readyz")
            return r.status == 503 && r.body.contains("credentials")
        }
        let why = try httpGet("http://127.0.0.1:\(health)/readyz").body
        #expect(explained != nil, "\(why)")
        #expect(!ctl.log.contains(wrong), "the token is in the log")
        #expect(await ctl.stop(SIGTERM).status == 0)
    }

    /// A controller started against a TLS API server whose certificate its kubeconfig's CA did not sign: a warning
    /// naming the TLS problem within 5 s, and `/readyz` saying so.
    @Test func untrustedServerCertificateAtStartIsLogged() async throws {
        let dir = try TempDir()
        func path(_ n: String) -> String { dir.url.appendingPathComponent(n).path }
        try loopbackServerCertificate(in: dir, otherCA: true)
        var options = EmulatorOptions()
        options.tlsCertificatePath = path("server.crt")
        options.tlsKeyPath = path("server.key")
        let e = try await KubeEmulator.start(options)
        defer { Task { await e.stop() } }
        let other = try String(contentsOfFile: path("other-ca.crt"), encoding: .utf8)
        let kc = try dir.file("kubeconfig", e.kubeconfig(caPEM: Array(other.utf8)))
        let policy = try dir.file("policy.yaml", Self.policy)
        let ctl = try ControllerProcess(["--policy", policy, "--kubeconfig", kc, "--health-addr", "127.0.0.1:0", "--metrics-addr", "off"],
                                        log: path("controller.log"))
        let health = try await ctl.port("health")
        let warned = await waitFor(.seconds(5)) { ctl.log.contains("the API server's certificate is not trusted") }
        #expect(warned != nil, "no warning within 5 s: \(ctl.log.suffix(2000))")
        let r = try httpGet("http://127.0.0.1:\(health)/readyz")
        #expect(r.status == 503 && r.body.contains("certificate is not trusted"), "\(r.body)")
        #expect(await ctl.stop(SIGTERM).status == 0)
    }

    /// A rule listing its target namespaces by name: replicas in exactly those that exist, and in a listed one as
    /// soon as it is created.
    @Test func listedTargetNamespaces() async throws {
        let s = try await Self.setup(namespaces: 3)
        defer { Task { await s.emulator.stop() } }
        let c = s.client
        try Data(Self.policy.replacingOccurrences(of: "namespaceSelector: {matchLabels: {dynsecret: \"on\"}}",
                                                  with: "namespaces: [team-0000, team-0002, later]").utf8).write(to: URL(fileURLWithPath: s.policy))
        let ctl = try ControllerProcess(["--policy", s.policy, "--kubeconfig", s.kubeconfig, "--health-addr", "127.0.0.1:0", "--metrics-addr", "off"],
                                        log: s.dir.url.appendingPathComponent("controller.log").path)
        _ = try await ctl.port("health")
        let two = try await waitFor(.seconds(20)) { try await Fixtures.replicas(c).keys.sorted() == ["team-0000/pull", "team-0002/pull"] }
        #expect(two != nil, "\(ctl.log.suffix(2000))")
        _ = try await c.create(.namespaces, Fixtures.namespace("later"))
        let three = try await waitFor(.seconds(10)) { try await Fixtures.replicas(c).keys.sorted() == ["later/pull", "team-0000/pull", "team-0002/pull"] }
        #expect(three != nil, "\(ctl.log.suffix(2000))")
        #expect(await ctl.stop(SIGTERM).status == 0)
    }

    @Test func invalidPolicyReloadKeepsTheRunningPolicy() async throws {
        let s = try await Self.setup(namespaces: 5)
        defer { Task { await s.emulator.stop() } }
        let c = s.client
        let ctl = try ControllerProcess([
            "--policy", s.policy, "--kubeconfig", s.kubeconfig, "--health-addr", "127.0.0.1:0", "--metrics-addr", "off", "--policy-poll", "100ms",
        ], log: s.dir.url.appendingPathComponent("controller.log").path)
        _ = try await ctl.port("health")
        #expect(try await waitFor(.seconds(20)) { try await Fixtures.replicas(c).count == 5 } != nil)

        // An invalid policy: logged, the old one keeps working.
        try Data("apiVersion: dynsecret.io/v1alpha1\nkind: ReplicationPolicy\nspec: {rules: [{name: x}]}\n".utf8).write(to: URL(fileURLWithPath: s.policy))
        #expect(await waitFor(.seconds(10)) { ctl.log.contains("policy file changed but is invalid") } != nil, "\(ctl.log.suffix(1500))")
        _ = try await c.create(.namespaces, Fixtures.namespace("team-new", labels: ["dynsecret": "on"]))
        #expect(try await waitFor(.seconds(10)) { try await Fixtures.replicas(c)["team-new/pull"] != nil } != nil, "the old policy stopped working")

        // A valid new policy selecting other namespaces: it takes over (prunes the replicas it no longer targets,
        // writes the new targets).
        try Data(Self.policy.replacingOccurrences(of: "dynsecret: \"on\"", with: "dynsecret: \"v2\"").utf8).write(to: URL(fileURLWithPath: s.policy))
        _ = try await c.create(.namespaces, Fixtures.namespace("team-v2", labels: ["dynsecret": "v2"]))
        let swapped = try await waitFor(.seconds(20)) { try await Fixtures.replicas(c).keys.sorted() == ["team-v2/pull"] }
        let now = try await Fixtures.replicas(c).keys.sorted()
        #expect(swapped != nil, "the reloaded policy did not take over: \(now.prefix(8))")
        #expect(ctl.log.contains("policy reloaded"))
        let (status, _) = await ctl.stop(SIGTERM)
        #expect(status == 0)
    }

    @Test func badConfigurationExitsTwoWithoutRequests() async throws {
        let s = try await Self.setup(namespaces: 1)
        defer { Task { await s.emulator.stop() } }
        let bad = try s.dir.file("bad.yaml", "kind: ReplicationPolicy\n")
        s.emulator.resetCounters()
        let r = await dynsecret(["controller", "--policy", bad, "--kubeconfig", s.kubeconfig, "--health-addr", "off", "--metrics-addr", "off"])
        #expect(r.code == 2)
        #expect(r.stderr.contains("bad.yaml"))
        let open = try s.dir.file("open-keyring.yaml", "x", mode: 0o644)
        let r2 = await dynsecret(["controller", "--policy", s.policy, "--kubeconfig", s.kubeconfig, "--store", s.store, "--keyring", open])
        #expect(r2.code == 2)
        #expect(r2.stderr.contains("too open"))
        let r3 = await dynsecret(["controller", "--policy", s.policy, "--kubeconfig", s.kubeconfig, "--resync", "soon"])
        #expect(r3.code == 2)
        // Out of range: an error, not a crash.
        let r4 = await dynsecret(["controller", "--policy", s.policy, "--kubeconfig", s.kubeconfig, "--resync", "99999999999999999999h"])
        #expect(r4.code == 2 && r4.stderr.contains("--resync: invalid duration 99999999999999999999h"), "\(r4.stderr)")
        for (flag, value) in [("--leader-election-namespace", "Not_A_Namespace"), ("--leader-election-id", "lease/../x")] {
            let r5 = await dynsecret(["controller", "--policy", s.policy, "--kubeconfig", s.kubeconfig, "--leader-elect", flag, value])
            #expect(r5.code == 2 && r5.stderr.contains("\(flag): \"\(value)\""), "\(r5.stderr)")
        }
        for (args, message) in [(["--burst", "5"], "--burst needs --qps"), (["--qps=-1"], "--qps must be between"), (["--qps", "nan"], "--qps must be between")] {
            let r6 = await dynsecret(["controller", "--policy", s.policy, "--kubeconfig", s.kubeconfig] + args)
            #expect(r6.code == 2 && r6.stderr.contains(message), "\(args): \(r6.stderr)")
        }
        // An unreadable policy says why.
        for (path, words) in [(s.dir.url.path, "is a directory"), ("/dev/zero", "larger than 1 MiB"), (s.dir.url.path + "/missing.yaml", "no such file")] {
            let r7 = await dynsecret(["controller", "--policy", path, "--kubeconfig", s.kubeconfig, "--health-addr", "off", "--metrics-addr", "off"])
            #expect(r7.code == 2 && r7.stderr.contains("policy \(path): \(words)"), "\(path): \(r7.stderr)")
        }
        #expect(s.emulator.counters()["controller get"] == nil && s.emulator.counters()["controller list"] == nil)
    }
}

/// The value of the sample `series` (name with labels, as printed) on the controller's /metrics.
func metricValue(_ port: Int, _ series: String) throws -> Double {
    let body = try httpGet("http://127.0.0.1:\(port)/metrics").body
    for line in body.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1)) ?? -1
    }
    return 0
}

/// Parses a Prometheus text exposition with the reference Python parser (`prometheus_client`), when installed.
func checkPrometheusText(_ path: String) throws {
    let probe = try runProcess("/usr/bin/env", ["python3", "-c", "import prometheus_client"])
    guard probe.code == 0 else {
        // CI installs it (.ci/run); elsewhere say so rather than fail.
        #expect(ProcessInfo.processInfo.environment["CI"] == nil, "prometheus_client is not installed")
        print("note: prometheus_client is not installed; the exposition was not checked by a real parser")
        return
    }
    let script = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        fams = list(text_string_to_metric_families(open(sys.argv[1]).read()))
        names = {f.name for f in fams}
        need = {"dynsecret_reconciles", "dynsecret_reconcile_duration_seconds", "dynsecret_api_requests", "dynsecret_replicas", "dynsecret_leader"}
        missing = need - names
        assert not missing, missing
        print(len(fams), "families")
        """
    let r = try runProcess("/usr/bin/env", ["python3", "-c", script, path])
    #expect(r.code == 0, "prometheus_client rejected the exposition: \(r.stderr)")
}
