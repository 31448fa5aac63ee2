import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Synchronization
import Testing

/// The controller under API faults, SIGKILL at random points, with two leader-electing processes, and with 50,000
/// unrelated Secrets in the cluster.
@Suite(.serialized, .heavy) struct ControllerFaultTests {
    typealias E2E = ControllerE2ETests

    static func controller(_ s: E2E.Setup, _ name: String, kubeconfig: String? = nil, _ extra: [String] = []) throws -> ControllerProcess {
        try ControllerProcess(["--policy", s.policy, "--kubeconfig", kubeconfig ?? s.kubeconfig, "--health-addr", "127.0.0.1:0",
                               "--metrics-addr", "off", "--workers", "8"] + extra,
                              log: s.dir.url.appendingPathComponent("\(name).log").path)
    }

    /// Retries a write the test itself makes while the emulator injects faults.
    static func persist(_ body: () async throws -> Void) async throws {
        for attempt in 1...50 {
            do { return try await body() } catch {
                if attempt == 50 { throw error }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    static func setSource(_ c: KubeClient, _ value: String) async throws {
        try await persist {
            var src = try await c.get(Secret.self, namespace: "platform", name: "pull")
            src.data["token"] = Array(value.utf8)
            _ = try await c.update(src)
        }
    }

    @Test func convergesUnderFaultsWithoutLosingAnUpdate() async throws {
        let s = try await E2E.setup(namespaces: 200)
        defer { Task { await s.emulator.stop() } }
        let c = s.client
        // A foreign Secret at the target name in a targeted namespace.
        let foreign = try await c.create(Fixtures.secret("team-0100", "pull", "foreign-value"))
        let ctl = try Self.controller(s, "faults")
        _ = try await ctl.port("health")
        #expect(try await waitFor(.seconds(60)) { try await Fixtures.replicas(c).count == 199 } != nil)

        // Before any fault every watch request the controller made is still open: that is one per informer.
        #expect(await waitFor(.seconds(10)) {
            s.emulator.openWatches >= 3 && s.emulator.openWatches == s.emulator.counters()["controller watch"]
        } != nil, "the controller's informers are not watching")
        let informers = s.emulator.openWatches
        var faults = Faults()
        faults.errorRate = 0.05
        faults.throttleRate = 0.03
        faults.retryAfterSeconds = 1
        s.emulator.setFaults(faults)
        // Watches dropped every second (on their own timer, so slow tampering requests cannot delay them); a
        // concurrent writer changes replicas behind the controller's back (its updates then meet 409 Conflicts)
        // while the source changes five times.
        let dropper = Task {
            var ended = 0, drops = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                drops += 1
                ended += s.emulator.dropWatches(abrupt: drops % 2 == 0)
            }
            return ended
        }
        let tamper = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                let ns = String(format: "team-%04d", Int.random(in: 0..<200))
                guard ns != "team-0100", var r = try? await c.get(Secret.self, namespace: ns, name: "pull") else { continue }
                r.data["token"] = Array("tampered".utf8)
                _ = try? await c.update(r)
            }
        }
        for v in 2...6 {
            try await Self.setSource(c, E2E.canary + "-v\(v)")
            try await Task.sleep(for: .milliseconds(700))
        }
        dropper.cancel()
        tamper.cancel()
        let endedWatches = await dropper.value
        _ = await tamper.value
        let final = E2E.canary + "-v6"
        let converged = try await waitFor(.seconds(60), every: .milliseconds(200)) {
            let r = try await Fixtures.replicas(c)
            return r.count == 199 && r.values.allSatisfy { $0 == final }
        }
        let r = try await Fixtures.replicas(c)
        #expect(converged != nil, "not converged under faults: \(r.values.filter { $0 != final }.count) stale of \(r.count)\n\(ctl.log.suffix(2000))")
        // Only the controller watches here: every watch the emulator ended must have been replaced by a new watch
        // request, and every informer watches again.
        let rewatched = await waitFor(.seconds(30), every: .milliseconds(100)) { s.emulator.openWatches == informers }
        let counters = s.emulator.counters()
        print("controller faults: converged \(converged ?? .zero) after the last change; injected 500s \(counters["injected-errors"] ?? 0), 429s \(counters["throttled"] ?? 0), watches ended \(endedWatches), controller watch requests \(counters["controller watch"] ?? 0)")
        #expect((counters["injected-errors"] ?? 0) > 0 && (counters["throttled"] ?? 0) > 0)
        #expect(endedWatches >= informers, "no watch was dropped")
        #expect((counters["controller watch"] ?? 0) >= informers + endedWatches, "dropped watches were not re-established")
        #expect(rewatched != nil, "\(s.emulator.openWatches) watches open after the drops, not \(informers)")
        let after = try await c.get(Secret.self, namespace: "team-0100", name: "pull")
        #expect(after.metadata.resourceVersion == foreign.metadata.resourceVersion, "the foreign Secret was written")
        s.emulator.setFaults(Faults())
        // Errors, retries and conflicts put no secret value in the log or in Events.
        let events = String(decoding: GoJSONWriter.compact(.array(try await c.list(.events, namespace: nil).items)), as: UTF8.self)
        for (what, text) in [("log", ctl.log), ("events", events)] {
            #expect(!text.contains("CANARY-controller") && !text.contains("tampered") && !text.contains("foreign-value"), "a secret value leaked into the \(what)")
        }
        // A failed replica write is logged with the API server's code and reason, never its free-form message (here
        // the emulator's "Internal error occurred: injected fault"), which a webhook could fill with the object's data.
        let writeFailures = ctl.log.split(separator: "\n").filter { $0.contains("write failed") }
        #expect(!writeFailures.contains { $0.contains("injected fault") }, "\(writeFailures.prefix(3))")
        #expect(await ctl.stop(SIGTERM).status == 0)
    }

    @Test func killedAtRandomPointsConvergesWithoutOrphans() async throws {
        let s = try await E2E.setup(namespaces: 60)
        defer { Task { await s.emulator.stop() } }
        let c = s.client
        var labelled = Set((0..<60).map { String(format: "team-%04d", $0) })
        var value = E2E.canary + "-v1"
        func label(_ ns: String, _ on: Bool) async throws { try await Fixtures.label(c, ns, on) }
        var runsThatWrote = 0
        for i in 0..<20 {
            let before = Fixtures.writes(s.emulator.counters(), by: "controller")
            let ctl = try Self.controller(s, "kill-\(i)")
            // Change the cluster while the controller starts, lists and writes; then kill it somewhere in there.
            try await Task.sleep(for: .milliseconds(Int.random(in: 20...400)))
            let all = (0..<60).map { String(format: "team-%04d", $0) }
            for _ in 0..<3 {
                let ns = all.randomElement()!
                let on = !labelled.contains(ns)
                try await label(ns, on)
                if on { labelled.insert(ns) } else { labelled.remove(ns) }
            }
            value = E2E.canary + "-v\(i + 2)"
            try await Self.setSource(c, value)
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...600)))
            _ = await ctl.stop(SIGKILL)
            if Fixtures.writes(s.emulator.counters(), by: "controller") > before { runsThatWrote += 1 }
        }
        print("controller SIGKILL: \(runsThatWrote) of 20 killed runs had written before the kill")
        #expect(runsThatWrote >= 5, "the kills did not land while the controller was working")
        let ctl = try Self.controller(s, "kill-final")
        _ = try await ctl.port("health")
        let want = Set(labelled.map { $0 + "/pull" })
        let converged = try await waitFor(.seconds(60), every: .milliseconds(100)) {
            let r = try await Fixtures.replicas(c)
            return Set(r.keys) == want && r.values.allSatisfy { $0 == value }
        }
        let r = try await Fixtures.replicas(c)
        #expect(converged != nil, "orphans: \(Set(r.keys).subtracting(want).sorted()); missing: \(want.subtracting(r.keys).sorted()); stale: \(r.values.filter { $0 != value }.count)")
        let stopped = await ctl.stop(SIGTERM)
        #expect(stopped.status == 0, "\(ctl.log.suffix(3000))")
    }

    @Test func onlyTheLeaderWritesAndAKilledLeaderIsReplaced() async throws {
        let s = try await E2E.setup(namespaces: 50, tokens: [TokenGrant(token: "ctl-a-token", user: "ctl-a"), TokenGrant(token: "ctl-b-token", user: "ctl-b")])
        defer { Task { await s.emulator.stop() } }
        let c = s.client
        let kcA = try s.dir.file("kc-a", s.emulator.kubeconfig(token: "ctl-a-token"))
        let kcB = try s.dir.file("kc-b", s.emulator.kubeconfig(token: "ctl-b-token"))
        let election = ["--leader-elect", "--leader-election-namespace", "platform", "--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms"]
        let a = try Self.controller(s, "leader-a", kubeconfig: kcA, election)
        #expect(await waitFor(.seconds(20)) { a.log.contains("became leader") } != nil)
        let b = try Self.controller(s, "leader-b", kubeconfig: kcB, election)
        _ = try await b.port("health")
        #expect(try await waitFor(.seconds(30)) { try await Fixtures.replicas(c).count == 50 } != nil)
        try await Self.setSource(c, E2E.canary + "-v2")
        #expect(try await waitFor(.seconds(30)) { try await Fixtures.replicas(c).values.allSatisfy { $0 == E2E.canary + "-v2" } } != nil)
        try await Task.sleep(for: .seconds(1))
        let counters = s.emulator.counters()
        #expect(Fixtures.writes(counters, by: "ctl-a") > 50, "\(counters.filter { $0.key.hasPrefix("ctl-") })")
        #expect(Fixtures.writes(counters, by: "ctl-b") == 0, "the follower wrote: \(counters.filter { $0.key.hasPrefix("ctl-b") })")
        #expect((counters["ctl-b watch"] ?? 0) > 0, "the follower keeps its caches warm")
        #expect(!b.log.contains("became leader"))

        // Kill the leader: the follower takes over within the lease duration (plus one retry period).
        _ = await a.stop(SIGKILL)
        let killed = ContinuousClock.now
        try await Self.setSource(c, E2E.canary + "-v3")
        let took = await waitFor(.seconds(30)) { b.log.contains("became leader") }
        #expect(took != nil)
        let handover = ContinuousClock.now - killed
        print("controller leader election: handover \(handover) after SIGKILL (lease duration 4 s)")
        #expect(handover < .seconds(4) + .milliseconds(1500), "handover took \(handover)")
        #expect(try await waitFor(.seconds(20)) { try await Fixtures.replicas(c).values.allSatisfy { $0 == E2E.canary + "-v3" } } != nil)
        #expect(Fixtures.writes(s.emulator.counters(), by: "ctl-b") > 0)
        #expect(await b.stop(SIGTERM).status == 0)
    }

    @Test func unrelatedSecretsDoNotGrowMemory() async throws {
        let s = try await E2E.setup(namespaces: 20)
        defer { Task { await s.emulator.stop() } }
        let c = s.client
        func peakAfterSync(_ name: String) async throws -> (peak: Int, rss: Int) {
            let ctl = try Self.controller(s, name)
            _ = try await ctl.port("health")
            #expect(try await waitFor(.seconds(60)) { try await Fixtures.replicas(c).count == 20 && ctl.log.contains("caches synced") } != nil)
            try await Task.sleep(for: .seconds(2))
            let result = (ctl.statusKiB("VmHWM:") ?? 0, ctl.statusKiB("VmRSS:") ?? 0)
            #expect(await ctl.stop(SIGTERM).status == 0)
            return result
        }
        let empty = try await peakAfterSync("memory-empty")
        // 50,000 Secrets the policy has nothing to do with, in the target namespaces and the source namespace.
        let payload = String(repeating: "x", count: 512)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<16 {
                group.addTask {
                    var i = w
                    while i < 50_000 {
                        let ns = i % 21 == 20 ? "platform" : String(format: "team-%04d", i % 21)
                        _ = try await c.create(Fixtures.secret(ns, "unrelated-\(i)", payload))
                        i += 16
                    }
                }
            }
            try await group.waitForAll()
        }
        let full = try await peakAfterSync("memory-full")
        let growth = full.peak - empty.peak
        print("controller memory: peak RSS \(empty.peak) KiB with no unrelated Secrets, \(full.peak) KiB with 50,000 (growth \(growth) KiB); RSS \(empty.rss) → \(full.rss) KiB")
        #expect(growth < 10 * 1024, "peak RSS grew by \(growth) KiB with 50,000 unrelated Secrets")
    }

    /// A tenth of `dynsecret-bench scale`: 5 sources selected by label → 2,000 namespaces = 10,000 replicas. The
    /// replicas are cached compactly (metadata, markers, a hash of the stored content): the controller's RSS grows by
    /// under 1 KiB per replica from caches synced with the 2,000 namespaces to all 10,000 replicas written and cached.
    @Test func tenThousandReplicasUnderOneKiBEach() async throws {
        let s = try await E2E.setup(namespaces: 0)
        defer { Task { await s.emulator.stop() } }
        let c = s.client
        try Data("""
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: scale}
            spec:
              rules:
              - name: pull
                source: {namespace: platform, selector: {matchLabels: {scale: pull}}}
                targets: {namespaceSelector: {matchLabels: {scale: "on"}}}
            """.utf8).write(to: URL(fileURLWithPath: s.policy))
        for k in 0..<5 { _ = try await c.create(Fixtures.secret("platform", "pull-\(k)", E2E.canary + "-\(k)", labels: ["scale": "pull"])) }
        let names = (0..<2000).map { String(format: "scale-%04d", $0) }
        try await Fixtures.createNamespaces(c, names, labels: [:])
        let ctl = try Self.controller(s, "scale")
        _ = try await ctl.port("health")
        #expect(await waitFor(.seconds(60)) { ctl.log.contains("caches synced") } != nil)
        try await Task.sleep(for: .seconds(1))
        let before = try #require(ctl.statusKiB("VmRSS:"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<16 {
                group.addTask {
                    for i in stride(from: w, to: names.count, by: 16) {
                        _ = try await c.mergePatch(.namespaces, name: names[i], .object(JSONObject([("metadata", .object(JSONObject([
                            ("labels", .object(JSONObject([("scale", .string("on"))]))),
                        ])))])))
                    }
                }
            }
            try await group.waitForAll()
        }
        let converged = try await waitFor(.seconds(240), every: .seconds(1)) {
            try await c.list(.secrets, options: ListOptions(labelSelector: "dynsecret.io/replica=true", limit: 1)).items.isEmpty == false
                && Fixtures.writes(s.emulator.counters(), by: "controller") >= 10_000
        }
        #expect(converged != nil, "\(ctl.log.suffix(2000))")
        try await Task.sleep(for: .seconds(2))
        let after = try #require(ctl.statusKiB("VmRSS:"))
        let replicas = try await c.listAll(.secrets, options: ListOptions(labelSelector: "dynsecret.io/replica=true")).items.count
        #expect(replicas == 10_000)
        #expect(Fixtures.writes(s.emulator.counters(), by: "controller") == 10_000, "writes ÷ needed must be 1.00")
        let perReplica = Double(after - before) * 1024 / 10_000
        print("controller memory at 10,000 replicas: RSS \(before) KiB → \(after) KiB, \(Int(perReplica)) bytes per replica")
        #expect(perReplica < 1024, "RSS grew \(Int(perReplica)) bytes per replica")
        #expect(await ctl.stop(SIGTERM).status == 0)
    }
}
