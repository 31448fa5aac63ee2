import DynSecretCore
import DynSecretKube
import KubeEmulator
import Logging
import Synchronization
import Testing
@testable import DynSecretController

/// Leader election against the emulator's Lease API: one leader at a time, handover after release or expiry.
@Suite(.serialized) struct LeaderElectorTests {
    static func elector(_ e: KubeEmulator, _ id: String, duration: Duration = .seconds(2)) -> LeaderElector {
        let client = KubeClient(config: KubeConfig(server: e.url, credentials: .none))
        var c = LeaderElector.Configuration(namespace: "kube-system", name: "test-lease", identity: id)
        c.leaseDuration = duration
        c.renewDeadline = duration * 0.75
        c.retryPeriod = .milliseconds(200)
        return LeaderElector(client: client, configuration: c, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    @Test func oneLeaderAtATimeAndReleaseHandsOver() async throws {
        let e = try await KubeEmulator.start()
        defer { Task { await e.stop() } }
        let a = Self.elector(e, "a")
        let b = Self.elector(e, "b")
        let leaders = Shared<[String]>([])
        let ta = Task { await a.run { leaders.withLock { $0.append("a") } } }
        try await Task.sleep(for: .milliseconds(300))
        let tb = Task { await b.run { leaders.withLock { $0.append("b") } } }
        // b keeps campaigning for well over a lease duration while a renews: it never wins.
        try await Task.sleep(for: .seconds(3))
        #expect(leaders.withLock { $0 } == ["a"])
        #expect(a.isLeader && !b.isLeader)
        let client = KubeClient(config: KubeConfig(server: e.url, credentials: .none))
        let held = try await client.get(Lease.self, namespace: "kube-system", name: "test-lease")
        #expect(held.holderIdentity == "a")
        #expect(held.leaseDurationSeconds == 2)

        // a stops and releases: b takes over well before the lease would have expired.
        ta.cancel()
        #expect(await ta.value == .stopped)
        let released = ContinuousClock.now
        await a.release()
        let taken = await poll(.seconds(5)) { b.isLeader }
        #expect(taken)
        #expect(ContinuousClock.now - released < .seconds(2))
        let after = try await client.get(Lease.self, namespace: "kube-system", name: "test-lease")
        #expect(after.holderIdentity == "b")
        #expect(after.leaseTransitions == 1)
        tb.cancel()
        _ = await tb.value
    }

    @Test func anUnrenewedLeaseIsTakenAfterItsDurationOnly() async throws {
        let e = try await KubeEmulator.start()
        defer { Task { await e.stop() } }
        let client = KubeClient(config: KubeConfig(server: e.url, credentials: .none))
        // A holder that vanished without releasing (its renewTime is in the future: wall clocks are never compared).
        let stale = Lease(metadata: ObjectMeta(name: "test-lease", namespace: "kube-system"), holderIdentity: "gone", leaseDurationSeconds: 2,
                          acquireTime: "2099-01-01T00:00:00.000000Z", renewTime: "2099-01-01T00:00:00.000000Z", leaseTransitions: 3)
        _ = try await client.create(stale)
        let b = Self.elector(e, "b")
        let t0 = ContinuousClock.now
        let tb = Task { await b.run {} }
        #expect(await poll(.seconds(6)) { b.isLeader })
        let waited = ContinuousClock.now - t0
        #expect(waited >= .seconds(2), "took the Lease after \(waited), before it expired")
        let lease = try await client.get(Lease.self, namespace: "kube-system", name: "test-lease")
        #expect(lease.holderIdentity == "b")
        #expect(lease.leaseTransitions == 4)
        tb.cancel()
        _ = await tb.value
    }

    @Test func aLeaderThatCannotRenewGivesUp() async throws {
        let e = try await KubeEmulator.start()
        let a = Self.elector(e, "a")
        let ta = Task { await a.run {} }
        #expect(await poll(.seconds(3)) { a.isLeader })
        await e.stop()  // the API server goes away
        let outcome = await ta.value
        #expect(outcome == .lost)
        #expect(!a.isLeader)
    }

    @Test func aLeaderWhoseRenewalsHangStopsLeadingBeforeTheLeaseExpires() async throws {
        let e = try await KubeEmulator.start()
        defer { Task { await e.stop() } }
        let a = Self.elector(e, "a")  // lease 2 s, renew deadline 1.5 s
        let ta = Task { await a.run {} }
        #expect(await poll(.seconds(3)) { a.isLeader })
        // Every request now takes 10 s: the renewal hangs. Leadership must end by the renew deadline, before any
        // other candidate could take the Lease (lease duration after it last saw it change).
        var slow = Faults()
        slow.latencyMilliseconds = 10_000
        e.setFaults(slow)
        let t0 = ContinuousClock.now
        #expect(await poll(.seconds(5)) { !a.isLeader })
        let took = ContinuousClock.now - t0
        #expect(took < .seconds(2), "still claimed leadership \(took) after renewals started to hang")
        #expect(await ta.value == .lost)
    }

    func poll(_ timeout: Duration, _ condition: () -> Bool) async -> Bool {
        let t0 = ContinuousClock.now
        while ContinuousClock.now - t0 < timeout {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }
}
