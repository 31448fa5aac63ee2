internal import DynSecretCore
public import DynSecretKube
internal import Foundation
public import Logging
internal import Synchronization

/// Leader election on a `coordination.k8s.io/v1` Lease, with client-go's algorithm and default timings: a candidate
/// takes the Lease when it does not exist, is free (empty holder), or its holder has not renewed it for
/// `leaseDuration` as timed by this process's own clock (never by comparing wall clocks); the leader renews every
/// `retryPeriod` and gives up when no renewal succeeded for `renewDeadline`. Every write carries the Lease's
/// `resourceVersion`, so two candidates never both win.
public final class LeaderElector: Sendable {
    /// Where the Lease lives and how it is timed.
    public struct Configuration: Sendable {
        public var namespace: String
        public var name: String
        /// This candidate's identity (client-go uses the pod name plus a random suffix).
        public var identity: String
        public var leaseDuration: Duration = .seconds(15)
        public var renewDeadline: Duration = .seconds(10)
        public var retryPeriod: Duration = .seconds(2)

        public init(namespace: String, name: String, identity: String) {
            self.namespace = namespace
            self.name = name
            self.identity = identity
        }
    }

    /// How `run` ended.
    public enum Outcome: Sendable, Equatable {
        /// Leadership was held and then lost (renewals failed for `renewDeadline`).
        case lost
        /// The task was cancelled.
        case stopped
    }

    private struct Observed {
        var spec: String?
        var at: ContinuousClock.Instant?
    }

    private struct Leadership {
        var leading = false
        /// When the last successful acquire or renew was *sent*: leadership is only claimed for `renewDeadline` after it.
        var renewedAt: ContinuousClock.Instant?
    }

    private enum Attempt { case held, heldByOther, failed }

    public let configuration: Configuration
    private let client: KubeClient
    private let clock: any Clock<Duration>
    private let logger: Logger
    private let leadership = Mutex(Leadership())
    private let observed = Mutex(Observed())

    /// An elector over `client`, sleeping on `clock`. Give it a client of its own without retries (see
    /// `Controller`), so Lease requests never queue behind other work and each attempt is bounded by its timeout.
    public init(client: KubeClient, configuration: Configuration, clock: any Clock<Duration> = ContinuousClock(), logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    private func now() -> Date { Date() }

    /// Whether this process may act as the leader: it holds the Lease and its last successful renewal was sent less
    /// than `renewDeadline` ago. Turns false by itself when renewals stall, before any other candidate (which waits
    /// `leaseDuration` > `renewDeadline` after it saw that renewal) can take the Lease.
    public var isLeader: Bool {
        let deadline = configuration.renewDeadline
        return leadership.withLock { l in
            guard l.leading, let at = l.renewedAt else { return false }
            return ContinuousClock.now - at < deadline
        }
    }

    /// Campaigns until the Lease is held, calls `onStartedLeading`, then renews until leadership is lost (`.lost`:
    /// another holder was seen, or no renewal succeeded within `renewDeadline`) or the task is cancelled (`.stopped`;
    /// call `release()` afterwards to hand over at once).
    public func run(onStartedLeading: @Sendable () async -> Void) async -> Outcome {
        let c = configuration
        while true {
            if Task.isCancelled { return .stopped }
            let sent = ContinuousClock.now
            if await attempt(timeout: c.renewDeadline) == .held {
                leadership.withLock { $0 = Leadership(leading: true, renewedAt: sent) }
                break
            }
            do { try await clock.sleep(for: jittered(c.retryPeriod)) } catch { return .stopped }
        }
        if Task.isCancelled { return .stopped }
        logger.info("became leader", metadata: ["lease": "\(c.namespace)/\(c.name)", "identity": "\(c.identity)"])
        await onStartedLeading()
        while true {
            do { try await clock.sleep(for: c.retryPeriod) } catch { return .stopped }
            if Task.isCancelled { return .stopped }
            let sent = ContinuousClock.now
            let last = leadership.withLock { $0.renewedAt } ?? sent
            let remaining = c.renewDeadline - (sent - last)
            let result: Attempt = remaining > .zero ? await attempt(timeout: remaining) : .failed
            switch result {
            case .held:
                leadership.withLock { $0.renewedAt = sent }
            case .heldByOther:
                leadership.withLock { $0.leading = false }
                logger.error("leadership lost: another candidate holds the Lease", metadata: ["lease": "\(c.namespace)/\(c.name)"])
                return .lost
            case .failed:
                if ContinuousClock.now - last >= c.renewDeadline {
                    leadership.withLock { $0.leading = false }
                    logger.error("leadership lost: the Lease was not renewed within the renew deadline", metadata: ["lease": "\(c.namespace)/\(c.name)"])
                    return .lost
                }
            }
        }
    }

    /// Gives the Lease up (empty holder, 1 s duration) if this process holds it, so a successor takes over at once.
    /// Bounded by `timeout`; a failure only means the successor waits for the Lease to expire.
    public func release(timeout: Duration = .seconds(2)) async {
        let was = leadership.withLock { l -> Bool in
            let w = l.leading
            l.leading = false
            return w
        }
        guard was else { return }
        let c = configuration
        let client = self.client
        let stamp = microTime(now())
        let done = await withTimeout(timeout) { () async -> Bool in
            do {
                var lease = try await client.get(Lease.self, namespace: c.namespace, name: c.name)
                guard lease.holderIdentity == c.identity else { return true }
                lease.holderIdentity = ""
                lease.leaseDurationSeconds = 1
                lease.renewTime = stamp
                _ = try await client.update(lease)
                return true
            } catch {
                return false
            }
        }
        if done == true {
            logger.info("released the Lease", metadata: ["lease": "\(c.namespace)/\(c.name)"])
        } else {
            logger.warning("could not release the Lease; the successor waits for it to expire", metadata: ["lease": "\(c.namespace)/\(c.name)"])
        }
    }

    private func jittered(_ d: Duration) -> Duration { d + d * Double.random(in: 0..<0.2) }


    /// One round of client-go's tryAcquireOrRenew, given up after `timeout` (its requests are cancelled).
    private func attempt(timeout: Duration) async -> Attempt {
        await withTimeout(timeout) { await self.tryAcquireOrRenew() } ?? .failed
    }

    private func tryAcquireOrRenew() async -> Attempt {
        let c = configuration
        let stamp = microTime(now())
        let seconds = Int64(max(1, c.leaseDuration.components.seconds))
        let existing: Lease
        do {
            existing = try await client.get(Lease.self, namespace: c.namespace, name: c.name)
        } catch where error.httpStatus == 404 {
            let lease = Lease(metadata: ObjectMeta(name: c.name, namespace: c.namespace), holderIdentity: c.identity,
                              leaseDurationSeconds: seconds, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0)
            do {
                let created = try await client.create(lease)
                observe(created)
                return .held
            } catch {
                logger.warning("lease create failed", metadata: ["lease": "\(c.namespace)/\(c.name)", "error": "\(error.message)"])
                return .failed
            }
        } catch {
            logger.warning("lease read failed", metadata: ["lease": "\(c.namespace)/\(c.name)", "error": "\(error.message)"])
            return .failed
        }
        observe(existing)
        let holder = existing.holderIdentity ?? ""
        if !holder.isEmpty && holder != c.identity {
            // Someone else holds it: only take it once it went unrenewed for its whole duration, as we timed it.
            let duration = Duration.seconds(existing.leaseDurationSeconds ?? seconds)
            let since = observed.withLock { $0.at } ?? ContinuousClock.now
            if ContinuousClock.now - since < duration { return .heldByOther }
        }
        var lease = existing
        if holder == c.identity {
            lease.renewTime = stamp
        } else {
            lease.holderIdentity = c.identity
            lease.acquireTime = stamp
            lease.renewTime = stamp
            lease.leaseTransitions = (existing.leaseTransitions ?? 0) + 1
        }
        lease.leaseDurationSeconds = seconds
        do {
            let updated = try await client.update(lease)
            observe(updated)
            return .held
        } catch {
            logger.debug("lease update failed", metadata: ["error": "\(error.message)"])
            return .failed
        }
    }

    /// Records the Lease's spec and, when it changed, the local time it was first seen that way.
    private func observe(_ lease: Lease) {
        let spec = "\(lease.holderIdentity ?? "")|\(lease.renewTime ?? "")|\(lease.leaseDurationSeconds ?? 0)|\(lease.leaseTransitions ?? 0)"
        observed.withLock { o in
            if o.spec != spec {
                o.spec = spec
                o.at = ContinuousClock.now
            }
        }
    }
}

/// Runs `body`, giving up after `limit`: returns nil then, and `body`'s task is cancelled (libcurl transfers stop).
func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { await body() }
        group.addTask {
            try? await Task.sleep(for: limit)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

/// `date` as a Kubernetes MicroTime (`2026-11-26T15:00:00.123456Z`).
func microTime(_ date: Date) -> String {
    let t = date.timeIntervalSince1970
    let s = Int64(t.rounded(.down))
    return Lease.microTime(secondsSinceEpoch: s, microseconds: min(999_999, Int((t - Double(s)) * 1_000_000)))
}
