import Synchronization
import Testing
@testable import DynSecretController

/// client-go work queue semantics.
@Suite struct WorkQueueTests {
    @Test func dedupsQueuedKeysInOrder() async {
        let q = WorkQueue<String>()
        q.add("a")
        q.add("b")
        q.add("a")
        #expect(q.depth == 2)
        #expect(await q.get() == "a")
        #expect(await q.get() == "b")
        #expect(q.depth == 0)
    }

    @Test func aKeyAddedWhileProcessingWaitsForDone() async {
        let q = WorkQueue<String>()
        q.add("a")
        let first = await q.get()
        #expect(first == "a")
        q.add("a")
        q.add("a")
        // Not handed out again while processing, and queued once.
        #expect(q.depth == 0)
        q.done("a")
        #expect(q.depth == 1)
        #expect(await q.get() == "a")
        q.done("a")
        #expect(q.depth == 0)
    }

    @Test func neverProcessesOneKeyConcurrently() async {
        let q = WorkQueue<Int>()
        let active = Shared<Set<Int>>([])
        let overlaps = Shared(0)
        let processed = Shared(0)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    while let k = await q.get() {
                        let clash = active.withLock { !$0.insert(k).inserted }
                        if clash { overlaps.withLock { $0 += 1 } }
                        await Task.yield()
                        active.withLock { _ = $0.remove(k) }
                        processed.withLock { $0 += 1 }
                        q.done(k)
                    }
                }
            }
            for i in 0..<5_000 { q.add(i % 7) }
            while q.depth > 0 { await Task.yield() }
            try? await Task.sleep(for: .milliseconds(50))
            await q.shutDown(drain: true)
        }
        #expect(overlaps.withLock { $0 } == 0)
        #expect(processed.withLock { $0 } >= 7)
    }

    @Test func rateLimitedKeysBackOffExponentiallyUntilForgotten() async throws {
        let q = WorkQueue<String>(baseDelay: .milliseconds(5), maxDelay: .seconds(1))
        #expect(q.backoff(failures: 0) == .milliseconds(5))
        #expect(q.backoff(failures: 3) == .milliseconds(40))
        #expect(q.backoff(failures: 30) == .seconds(1))
        q.addRateLimited("a")
        q.addRateLimited("a")
        #expect(q.failures("a") == 2)
        #expect(q.depth == 0)
        let t0 = ContinuousClock.now
        #expect(await q.get() == "a")
        #expect(ContinuousClock.now - t0 >= .milliseconds(4))
        q.forget("a")
        #expect(q.failures("a") == 0)
    }

    @Test func shutdownWakesWaitersAndDrainsInFlight() async throws {
        let q = WorkQueue<String>()
        let waiter = Task { await q.get() }
        try await Task.sleep(for: .milliseconds(20))
        q.add("busy")  // handed to the waiting task
        #expect(await waiter.value == "busy")
        let idle = Task { await q.get() }
        try await Task.sleep(for: .milliseconds(20))
        let drained = Shared(false)
        let shutdown = Task {
            await q.shutDown(drain: true)
            drained.withLock { $0 = true }
        }
        #expect(await idle.value == nil)
        try await Task.sleep(for: .milliseconds(50))
        #expect(drained.withLock { $0 } == false, "shutDown(drain:) returned while a key was in flight")
        q.add("late")
        #expect(q.depth == 0)
        q.done("busy")
        await shutdown.value
        #expect(drained.withLock { $0 })
        #expect(await q.get() == nil)
    }

    @Test func cancellingAWaitingGetReturnsNil() async throws {
        let q = WorkQueue<String>()
        let waiter = Task { await q.get() }
        try await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        #expect(await waiter.value == nil)
        q.add("x")
        #expect(q.depth == 1, "a cancelled waiter must not swallow a key")
    }
}

/// A Mutex in a class, so escaping closures can share it.
final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ v: Value) { value = Mutex(v) }
    func withLock<R>(_ body: (inout Value) -> R) -> R { value.withLock { body(&$0) } }
}
