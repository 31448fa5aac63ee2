internal import Synchronization

/// A work queue with client-go's semantics: a key added while queued is not added twice (dedup); a key added while
/// being processed is queued again only after `done` (never processed twice at once); failures re-add a key after a
/// per-key exponential backoff (`addRateLimited`, cleared by `forget`); `shutDown(drain:)` stops new work and lets
/// the keys being processed finish. Time comes from the injected clock.
public final class WorkQueue<Key: Hashable & Sendable>: Sendable {
    private struct State {
        var queue: [Key] = []
        var head = 0
        var dirty: Set<Key> = []
        var processing: Set<Key> = []
        var failures: [Key: Int] = [:]
        var waiters: [(id: Int, continuation: CheckedContinuation<Key?, Never>)] = []
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        var nextWaiter = 0
        var shuttingDown = false

        var count: Int { queue.count - head }

        mutating func pop() -> Key? {
            guard head < queue.count else { return nil }
            let k = queue[head]
            head += 1
            if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return k
        }
    }

    private let state = Mutex(State())
    private let clock: any Clock<Duration>
    private let baseDelay: Duration
    private let maxDelay: Duration

    /// A queue whose failed keys come back after `baseDelay × 2^failures`, at most `maxDelay` (client-go: 5 ms, 1000 s).
    public init(clock: any Clock<Duration> = ContinuousClock(), baseDelay: Duration = .milliseconds(5), maxDelay: Duration = .seconds(300)) {
        self.clock = clock
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// Queues `key` unless it is already queued (or the queue is shut down).
    public func add(_ key: Key) {
        let waiter: CheckedContinuation<Key?, Never>? = state.withLock { s in
            if s.shuttingDown || s.dirty.contains(key) { return nil }
            s.dirty.insert(key)
            if s.processing.contains(key) { return nil }
            if !s.waiters.isEmpty {
                // Hand the key straight to a waiting worker.
                s.dirty.remove(key)
                s.processing.insert(key)
                return s.waiters.removeFirst().continuation
            }
            s.queue.append(key)
            return nil
        }
        waiter?.resume(returning: key)
    }

    /// Queues `key` after `delay`.
    public func add(_ key: Key, after delay: Duration) {
        guard delay > .zero else { return add(key) }
        let clock = self.clock
        Task { [weak self] in
            try? await clock.sleep(for: delay)
            self?.add(key)
        }
    }

    /// Queues `key` after its backoff, which doubles with each failure since the last `forget`.
    public func addRateLimited(_ key: Key) {
        let n = state.withLock { s -> Int in
            let n = s.failures[key, default: 0]
            s.failures[key] = n + 1
            return n
        }
        add(key, after: backoff(failures: n))
    }

    /// The delay after `failures` earlier failures.
    public func backoff(failures: Int) -> Duration {
        var d = baseDelay
        for _ in 0..<min(failures, 40) {
            d = d * 2
            if d >= maxDelay { return maxDelay }
        }
        return min(d, maxDelay)
    }

    /// Clears the failure count of `key`.
    public func forget(_ key: Key) { state.withLock { _ = $0.failures.removeValue(forKey: key) } }

    /// Failures recorded for `key` since the last `forget`.
    public func failures(_ key: Key) -> Int { state.withLock { $0.failures[key, default: 0] } }

    /// Keys waiting to be processed.
    public var depth: Int { state.withLock { $0.count } }

    /// The next key, marked as being processed; nil once the queue is shut down (or the task cancelled).
    public func get() async -> Key? {
        let id = state.withLock { s -> Int in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Key?, Never>) in
                let ready: Key?? = state.withLock { s in
                    if let k = s.pop() {
                        s.dirty.remove(k)
                        s.processing.insert(k)
                        return .some(k)
                    }
                    if s.shuttingDown || Task.isCancelled { return .some(nil) }
                    s.waiters.append((id, c))
                    return nil
                }
                if let ready { c.resume(returning: ready) }
            }
        } onCancel: {
            let c = state.withLock { s -> CheckedContinuation<Key?, Never>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            c?.resume(returning: nil)
        }
    }

    /// Marks `key` as processed; if it was added meanwhile it is queued again.
    public func done(_ key: Key) {
        let (waiter, drained): (CheckedContinuation<Key?, Never>?, [CheckedContinuation<Void, Never>]) = state.withLock { s in
            s.processing.remove(key)
            var w: CheckedContinuation<Key?, Never>?
            if s.dirty.contains(key) && !s.shuttingDown {
                if !s.waiters.isEmpty {
                    s.dirty.remove(key)
                    s.processing.insert(key)
                    w = s.waiters.removeFirst().continuation
                } else {
                    s.queue.append(key)
                }
            }
            var d: [CheckedContinuation<Void, Never>] = []
            if s.shuttingDown && s.processing.isEmpty {
                d = s.drainWaiters
                s.drainWaiters = []
            }
            return (w, d)
        }
        waiter?.resume(returning: key)
        for c in drained { c.resume() }
    }

    /// Stops handing out keys (waiting `get` calls return nil) and drops the queued ones; with `drain`, returns once
    /// every key being processed is `done`.
    public func shutDown(drain: Bool) async {
        let waiters = state.withLock { s -> [CheckedContinuation<Key?, Never>] in
            s.shuttingDown = true
            s.queue = []
            s.head = 0
            s.dirty = []
            let w = s.waiters.map(\.continuation)
            s.waiters = []
            return w
        }
        for w in waiters { w.resume(returning: nil) }
        guard drain else { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.processing.isEmpty { return true }
                s.drainWaiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}
