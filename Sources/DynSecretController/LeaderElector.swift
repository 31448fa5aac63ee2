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
        var resourceVersion: String?
        var acquireTime: String?
        var transitions: Int64 = 0
    }

    public let configuration: Configuration
    private let client: KubeClient
    private let clock: any Clock<Duration>
    private let logger: Logger
    private let leading = Atomic<Bool>(false)
    private let observed = Mutex(Observed())

    /// An elector over `client`, sleeping on `clock`.
    public init(client: KubeClient, configuration: Configuration, clock: any Clock<Duration> = ContinuousClock(), logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    private func now() -> Date { Date() }

    /// Whether this process holds the Lease.
    public var isLeader: Bool { leading.load(ordering: .acquiring) }

    /// Campaigns until the Lease is held, calls `onStartedLeading`, then renews until leadership is lost (`.lost`) or
    /// the task is cancelled (`.stopped`; call `release()` afterwards to hand over at once).
    public func run(onStartedLeading: @Sendable () async -> Void) async -> Outcome {
        let c = configuration
        while !Task.isCancelled {
            if await tryAcquireOrRenew() { break }
            do { try await clock.sleep(for: jittered(c.retryPeriod)) } catch { return .stopped }
        }
        if Task.isCancelled { return .stopped }
        leading.store(true, ordering: .releasing)
        logger.info("became leader", metadata: ["lease": "\(c.namespace)/\(c.name)", "identity": "\(c.identity)"])
        await onStartedLeading()
        var lastRenew = ContinuousClock.now
        while !Task.isCancelled {
            do { try await clock.sleep(for: c.retryPeriod) } catch { return .stopped }
            if Task.isCancelled { return .stopped }
            if await tryAcquireOrRenew() {
                lastRenew = ContinuousClock.now
            } else if ContinuousClock.now - lastRenew > c.renewDeadline {
                leading.store(false, ordering: .releasing)
                logger.error("leadership lost: the Lease was not renewed within the renew deadline", metadata: ["lease": "\(c.namespace)/\(c.name)"])
                return .lost
            }
        }
        return .stopped
    }

    /// Gives the Lease up (empty holder, 1 s duration) if this process holds it, so a successor takes over at once.
    public func release() async {
        guard leading.exchange(false, ordering: .acquiringAndReleasing) else { return }
        let c = configuration
        do {
            var lease = try await client.get(Lease.self, namespace: c.namespace, name: c.name)
            guard lease.holderIdentity == c.identity else { return }
            lease.holderIdentity = ""
            lease.leaseDurationSeconds = 1
            lease.renewTime = microTime(now())
            _ = try await client.update(lease)
            logger.info("released the Lease", metadata: ["lease": "\(c.namespace)/\(c.name)"])
        } catch {
            logger.warning("could not release the Lease", metadata: ["lease": "\(c.namespace)/\(c.name)", "error": "\(error.message)"])
        }
    }

    private func jittered(_ d: Duration) -> Duration { d + d * Double.random(in: 0..<0.2) }

    private func microTime(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        let s = Int64(t.rounded(.down))
        return Lease.microTime(secondsSinceEpoch: s, microseconds: min(999_999, Int((t - Double(s)) * 1_000_000)))
    }

    /// One round of client-go's tryAcquireOrRenew: true when this process holds the Lease afterwards.
    func tryAcquireOrRenew() async -> Bool {
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
                return true
            } catch {
                logger.debug("lease create failed", metadata: ["error": "\(error.message)"])
                return false
            }
        } catch {
            logger.warning("lease read failed", metadata: ["lease": "\(c.namespace)/\(c.name)", "error": "\(error.message)"])
            return false
        }
        observe(existing)
        let holder = existing.holderIdentity ?? ""
        if !holder.isEmpty && holder != c.identity {
            // Someone else holds it: only take it once it went unrenewed for its whole duration, as we timed it.
            let duration = Duration.seconds(existing.leaseDurationSeconds ?? seconds)
            let since = observed.withLock { $0.at } ?? ContinuousClock.now
            if ContinuousClock.now - since < duration { return false }
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
            return true
        } catch {
            logger.debug("lease update failed", metadata: ["error": "\(error.message)"])
            return false
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
            o.resourceVersion = lease.metadata.resourceVersion
        }
    }
}
