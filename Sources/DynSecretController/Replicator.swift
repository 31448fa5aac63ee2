public import DynSecretCore
public import DynSecretKube
internal import Foundation
public import Logging

/// Runs one replication policy: the cluster cache (`ClusterCache`: informers on what the policy manages, compact),
/// a work queue of `ReplicationKey`s (target namespaces), and workers that reconcile one key at a time
/// (`Reconciler`: plan, read before create, fenced writes) — writing only while `canWrite()` says so (the leader).
///
/// Every source version seen is handed to `onSource` (the at-rest store). Writes never start before every informer
/// has completed its first list.
public final class Replicator: Sendable {
    /// Tuning.
    public struct Options: Sendable {
        public var workers = 4
        /// Every target namespace is reconciled again this often (a safety net; watches drive normal work).
        public var resync: Duration = .seconds(600)
        public init() {}
    }

    public let policy: ReplicationPolicy
    private let options: Options
    private let metrics: ControllerMetrics
    private let logger: Logger
    private let clock: any Clock<Duration>
    private let canWrite: @Sendable () -> Bool
    private let onSource: @Sendable (Secret) -> Void
    private let cache: ClusterCache
    private let expectations = WriteExpectations()
    private let reconciler: Reconciler
    /// The work queue.
    let queue: WorkQueue<ReplicationKey>

    public init(policy: ReplicationPolicy, client: KubeClient, options: Options = Options(), metrics: ControllerMetrics,
                events: EventRecorder, logger: Logger, clock: any Clock<Duration> = ContinuousClock(),
                canWrite: @escaping @Sendable () -> Bool, onSource: @escaping @Sendable (Secret) -> Void = { _ in }) {
        self.policy = policy
        self.options = options
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        self.canWrite = canWrite
        self.onSource = onSource
        self.queue = WorkQueue(clock: clock)
        let cache = ClusterCache(name: ReplicationKey.localCluster, policy: policy, client: client, readsSources: true, clock: clock, logger: logger)
        self.cache = cache
        reconciler = Reconciler(policy: policy, client: client, cache: cache, expectations: expectations, metrics: metrics, events: events,
                                logger: logger, canWrite: canWrite, sourceUID: { cache.sourceUID($0, $1) })
    }

    /// True once every informer has completed a list.
    public var hasSynced: Bool { cache.hasSynced }

    /// Objects held in the caches (for memory checks and logs).
    public var cachedObjects: Int { cache.count }

    /// Queues every known namespace (after a sync, a source change, a resync, or on becoming leader).
    public func enqueueAll() {
        for n in cache.namespaceNames { queue.add(ReplicationKey(cluster: cache.name, namespace: n)) }
        metrics.setQueueDepth(queue.depth)
    }

    /// Runs informers and workers until the task is cancelled or `stop()` is called; returns after in-flight
    /// reconciles finished.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.cache.run { self.changed($0) } }
            group.addTask { await self.resyncLoop() }
            // Workers end when the queue shuts down (stop) or the task is cancelled; then the informers go too.
            await withTaskGroup(of: Void.self) { workers in
                for _ in 0..<max(1, options.workers) { workers.addTask { await self.worker() } }
            }
            group.cancelAll()
        }
    }

    /// Stops taking work and waits for the reconciles in flight; `run()` then returns.
    public func stop() async {
        await queue.shutDown(drain: true)
    }

    /// What a change in the cache queues. Nothing is queued before the caches have synced (then everything is).
    private func changed(_ change: ClusterCache.Change) {
        let synced = cache.hasSynced
        switch change {
        case .namespace(let name, let deleted):
            if deleted { metrics.setReplicaStates(namespace: name, nil) }
            if synced { queue.add(key(name)) }
        case .replica(let r, let deleted):
            // The watch event of this process's own create or update needs no reconcile (the write came from one),
            // which halves the work of a source change.
            let own = expectations.settle(key(r.namespace), .replica(r.kind), r.name, r.resourceVersion, deleted: deleted)
            if synced && !own { queue.add(key(r.namespace)) }
        case .source(let s, let deleted):
            // ConfigMaps are not secret: only Secret sources go to the at-rest store.
            if !deleted, s.kind == .secret, policy.rules.contains(where: { ReplicationPlanner.isSource(s, of: $0) }) {
                onSource(Secret(metadata: s.metadata, type: s.type, data: s.data, immutable: s.immutable))
            }
            if synced { enqueueAll() }
        case .serviceAccount(let namespace, let name, let resourceVersion, let deleted):
            expectations.settle(key(namespace), .serviceAccount, name, resourceVersion, deleted: deleted)
            if synced { queue.add(key(namespace)) }
        case .synced:
            enqueueAll()
        }
        metrics.setQueueDepth(queue.depth)
    }

    private func key(_ namespace: String) -> ReplicationKey { ReplicationKey(cluster: cache.name, namespace: namespace) }

    private func resyncLoop() async {
        while !Task.isCancelled {
            do { try await clock.sleep(for: options.resync) } catch { return }
            if hasSynced { enqueueAll() }
        }
    }

    private func worker() async {
        while let key = await queue.get() {
            defer {
                queue.done(key)
                metrics.setQueueDepth(queue.depth)
            }
            guard hasSynced, canWrite() else {
                // Caches not yet complete, or not the leader: drop the key; every namespace is queued again when the
                // caches sync and when this process becomes leader.
                continue
            }
            if reconciler.awaitsOwnWrites(key) {
                queue.add(key, after: .milliseconds(20))
                continue
            }
            let start = ContinuousClock.now
            let outcome = await reconciler.reconcile(key)
            metrics.reconciled(success: outcome != .failed, duration: ContinuousClock.now - start)
            switch outcome {
            case .done: queue.forget(key)
            case .failed: queue.addRateLimited(key)
            case .again:
                queue.forget(key)
                queue.add(key)
            }
        }
    }
}
