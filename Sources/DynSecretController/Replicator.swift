public import DynSecretCore
public import DynSecretKube
internal import Foundation
public import Logging
internal import Synchronization

/// Runs one replication policy against the cluster: informers on what the policy manages only (all Namespaces, the
/// source Secrets by name or selector in their namespaces, Secrets labelled `dynsecret.io/replica=true`, the
/// ServiceAccounts the policy patches, each by name), a work queue keyed by target namespace, and workers that plan
/// that namespace with the replication planner and apply the writes — only while `canWrite()` says so (the leader).
///
/// Every source version seen is handed to `onSource` (the at-rest store). Conflicts and failures become Events on the
/// source Secret. Writes never start before every informer has completed its first list.
public final class Replicator: Sendable {
    /// Tuning.
    public struct Options: Sendable {
        public var workers = 4
        /// Every target namespace is reconciled again this often (a safety net; watches drive normal work).
        public var resync: Duration = .seconds(600)
        public init() {}
    }

    private struct Caches {
        var namespaces: [String: ReplicationNamespace] = [:]
        /// Source Secrets by informer, then by `namespace/name`.
        var sources: [Int: [String: Secret]] = [:]
        var replicas: [String: [String: Secret]] = [:]
        var serviceAccounts: [String: [String: ServiceAccount]] = [:]
    }

    public let policy: ReplicationPolicy
    /// Each rule's listed target namespaces (`targets.namespaces`), as sets for `planFor`.
    private let listedTargets: [Set<String>]
    private let client: KubeClient
    private let options: Options
    private let metrics: ControllerMetrics
    private let events: EventRecorder
    private let logger: Logger
    private let clock: any Clock<Duration>
    private let canWrite: @Sendable () -> Bool
    private let onSource: @Sendable (Secret) -> Void
    private let caches = Mutex(Caches())
    private let informers: [(kind: Kind, informer: Informer)]
    private let synced = Mutex<Set<Int>>([])
    /// This process's writes not yet seen in the caches, by target namespace. A reconcile of that namespace waits
    /// for them (polling briefly, at most `expectationTimeout`) instead of planning from a cache its watch has not
    /// updated yet, which would repeat a write and meet a 409 Conflict (client-go's "expectations").
    private let expectations = Mutex<[String: [Expectation]]>([:])
    static let expectationTimeout = Duration.seconds(2)

    private struct Expectation: Sendable {
        var kind: Kind
        var name: String
        var resourceVersion: String?
        var deleted: Bool
        var deadline: ContinuousClock.Instant
    }
    private let allSynced = Atomic<Bool>(false)
    /// The work queue (target namespaces).
    public let queue: WorkQueue<String>

    private enum Kind: Sendable { case namespaces, replicas, source, serviceAccounts }

    public init(policy: ReplicationPolicy, client: KubeClient, options: Options = Options(), metrics: ControllerMetrics,
                events: EventRecorder, logger: Logger, clock: any Clock<Duration> = ContinuousClock(),
                canWrite: @escaping @Sendable () -> Bool, onSource: @escaping @Sendable (Secret) -> Void = { _ in }) {
        self.policy = policy
        listedTargets = policy.rules.map { Set($0.targets.namespaces) }
        self.client = client
        self.options = options
        self.metrics = metrics
        self.events = events
        self.logger = logger
        self.clock = clock
        self.canWrite = canWrite
        self.onSource = onSource
        self.queue = WorkQueue(clock: clock)
        var list: [(Kind, Informer)] = [
            (.namespaces, Informer(client: client, resource: .namespaces, clock: clock)),
            (.replicas, Informer(client: client, resource: .secrets, options: ListOptions(labelSelector: "\(ReplicaMarkers.replicaLabel)=true"), clock: clock)),
        ]
        var seen: Set<String> = []
        for rule in policy.rules {
            var opts = ListOptions()
            if let name = rule.source.name {
                opts.fieldSelector = "metadata.name=\(name)"
            } else if let selector = rule.source.selector, !selector.queryString.isEmpty {
                opts.labelSelector = selector.queryString
            }
            let id = "\(rule.source.namespace)|\(opts.fieldSelector ?? "")|\(opts.labelSelector ?? "")"
            if seen.insert(id).inserted {
                list.append((.source, Informer(client: client, resource: .secrets, namespace: rule.source.namespace, options: opts, clock: clock)))
            }
        }
        for n in policy.serviceAccountNames {
            list.append((.serviceAccounts, Informer(client: client, resource: .serviceAccounts, options: ListOptions(fieldSelector: "metadata.name=\(n)"), clock: clock)))
        }
        informers = list
    }

    /// True once every informer has completed a list.
    public var hasSynced: Bool { allSynced.load(ordering: .acquiring) }

    /// Objects held in the caches (for memory checks and logs).
    public var cachedObjects: Int {
        caches.withLock { c in
            c.namespaces.count + c.sources.values.reduce(0) { $0 + $1.count } + c.replicas.values.reduce(0) { $0 + $1.count }
                + c.serviceAccounts.values.reduce(0) { $0 + $1.count }
        }
    }

    /// Queues every known namespace (after a sync, a source change, a resync, or on becoming leader).
    public func enqueueAll() {
        let names = caches.withLock { Array($0.namespaces.keys) }
        for n in names { queue.add(n) }
        metrics.setQueueDepth(queue.depth)
    }

    /// Runs informers and workers until the task is cancelled or `stop()` is called; returns after in-flight
    /// reconciles finished.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            for (i, entry) in informers.enumerated() {
                group.addTask { await self.consume(i, entry.kind, entry.informer) }
            }
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

    // MARK: informers

    private func consume(_ index: Int, _ kind: Kind, _ informer: Informer) async {
        for await event in informer.events() {
            switch event {
            case .added(let o), .modified(let o):
                apply(index, kind, o, deleted: false)
            case .deleted(let o):
                apply(index, kind, o, deleted: true)
            case .synced:
                let first = synced.withLock { $0.insert(index).inserted && $0.count == informers.count }
                if first {
                    allSynced.store(true, ordering: .releasing)
                    logger.info("caches synced", metadata: ["objects": "\(cachedObjects)", "informers": "\(informers.count)"])
                }
                if hasSynced { enqueueAll() }
            }
        }
    }

    private func apply(_ index: Int, _ kind: Kind, _ o: JSONValue, deleted: Bool) {
        let ns = o["metadata"]?["namespace"]?.stringValue ?? ""
        let name = o["metadata"]?["name"]?.stringValue ?? ""
        switch kind {
        case .namespaces:
            caches.withLock { c in
                c.namespaces[name] = deleted ? nil : ReplicationNamespace(apiObject: o)
            }
            if deleted { metrics.setReplicaStates(namespace: name, nil) }
            if hasSynced { queue.add(name) }
        case .replicas:
            // An object that does not decode keeps its previous cached version (it is not treated as deleted).
            let secret = deleted ? nil : decodeSecret(o)
            if !deleted && secret == nil { return }
            caches.withLock { c in
                if let secret { c.replicas[ns, default: [:]][name] = secret } else {
                    c.replicas[ns]?[name] = nil
                    if c.replicas[ns]?.isEmpty == true { c.replicas[ns] = nil }
                }
            }
            // The watch event of this process's own create or update needs no reconcile (the write came from one),
            // which halves the work of a source change.
            let own = settle(ns, .replicas, name, o["metadata"]?["resourceVersion"]?.stringValue, deleted: deleted)
            if hasSynced && !own { queue.add(ns) }
        case .source:
            let secret = deleted ? nil : decodeSecret(o)
            if !deleted && secret == nil { return }
            caches.withLock { c in c.sources[index, default: [:]][ns + "/" + name] = secret }
            if let secret, policy.rules.contains(where: { ReplicationPlanner.isSource(secret, of: $0) }) { onSource(secret) }
            if hasSynced { enqueueAll() }
        case .serviceAccounts:
            var sa: ServiceAccount?
            if !deleted {
                sa = try? ServiceAccount(kubeJSON: o)
                if sa == nil { return }
            }
            caches.withLock { c in
                c.serviceAccounts[ns, default: [:]][name] = sa
                if c.serviceAccounts[ns]?.isEmpty == true { c.serviceAccounts[ns] = nil }
            }
            settle(ns, .serviceAccounts, name, o["metadata"]?["resourceVersion"]?.stringValue, deleted: deleted)
            if hasSynced { queue.add(ns) }
        }
        metrics.setQueueDepth(queue.depth)
    }

    private func decodeSecret(_ o: JSONValue) -> Secret? {
        do { return try Secret(kubeJSON: o) } catch {
            logger.warning("ignoring a Secret that does not decode", metadata: ["secret": "\(o["metadata"]?["namespace"]?.stringValue ?? "")/\(o["metadata"]?["name"]?.stringValue ?? "")", "error": "\(error.message)"])
            return nil
        }
    }

    private func resyncLoop() async {
        while !Task.isCancelled {
            do { try await clock.sleep(for: options.resync) } catch { return }
            if hasSynced { enqueueAll() }
        }
    }

    // MARK: workers

    private func worker() async {
        while let ns = await queue.get() {
            defer {
                queue.done(ns)
                metrics.setQueueDepth(queue.depth)
            }
            guard hasSynced, canWrite() else {
                // Caches not yet complete, or not the leader: drop the key; every namespace is queued again when the
                // caches sync and when this process becomes leader.
                continue
            }
            if awaitsOwnWrites(ns) {
                queue.add(ns, after: .milliseconds(20))
                continue
            }
            let start = ContinuousClock.now
            let ok = await reconcile(ns)
            metrics.reconciled(success: ok, duration: ContinuousClock.now - start)
            if ok { queue.forget(ns) } else { queue.addRateLimited(ns) }
        }
    }

    /// Plans and applies one target namespace. Returns false when a write failed (the key is retried with backoff).
    func reconcile(_ ns: String) async -> Bool {
        let snapshot = caches.withLock { c -> (ReplicationNamespace?, [Secret], [String: Secret], [ServiceAccount]) in
            var sources: [Secret] = []
            for (_, m) in c.sources.sorted(by: { $0.key < $1.key }) { sources += m.values }
            return (c.namespaces[ns], sources, c.replicas[ns] ?? [:], Array((c.serviceAccounts[ns] ?? [:]).values))
        }
        guard let namespace = snapshot.0 else {
            metrics.setReplicaStates(namespace: ns, nil)
            return true
        }
        var state = ReplicationState(namespaces: [namespace], secrets: snapshot.1 + snapshot.2.values.sorted { ($0.metadata.name ?? "") < ($1.metadata.name ?? "") },
                                     serviceAccounts: snapshot.3)
        var plan = planFor(ns, state)
        // A create may meet a Secret this controller does not watch (not labelled as a replica): read the exact name
        // first, and plan again with it, so a foreign Secret is reported instead of being written over.
        var found = false
        for a in plan.actions where a.kind == .create && snapshot.2[a.name] == nil {
            do {
                let existing = try await client.get(Secret.self, namespace: ns, name: a.name)
                state.secrets.append(existing)
                found = true
            } catch where error.httpStatus == 404 {
                continue
            } catch {
                logger.warning("reading a target failed", metadata: ["namespace": "\(ns)", "secret": "\(a.name)", "error": "\(error.message)"])
                return false
            }
        }
        if found { plan = planFor(ns, state) }
        var writer = FencedWriter(inner: KubeReplicationWriter(client: client, serviceAccounts: snapshot.3), canWrite: canWrite)
        // Each write is recorded as soon as it returns, so its watch event (which can arrive at the same moment) is
        // recognised, and the next reconcile of `ns` waits for it.
        writer.afterWrite = { [self] kind, w in expect(kind, w, in: ns) }
        let result = await ReplicationApplier.apply(plan, to: &writer)
        for a in plan.actions where writer.done.contains(FencedWriter.key(a)) { metrics.wrote(a.kind, count: 1) }
        var failedSecrets = 0
        for f in result.failures {
            let status = writer.errors[FencedWriter.key(f.action)] ?? ReplicationWriteError(f.message)
            if f.action.kind != .patchServiceAccount { failedSecrets += 1 }
            // The API server's code and reason only, never its message: an admission webhook's free-form denial text
            // could quote the object's data. Failures with no HTTP status (transport, leadership, a refused action)
            // carry this process's own message.
            let http = "HTTP \(status.code)\(status.reason.isEmpty ? "" : " " + status.reason)"
            logger.warning("write failed", metadata: ["namespace": "\(ns)", "action": "\(f.action.kind.rawValue)", "name": "\(f.action.name)",
                                                      "code": "\(status.code)", "error": "\(status.code > 0 ? http : String(f.message.prefix(512)))"])
            if !Self.isStale(status) && canWrite() {
                let why = status.code == 0 ? "no answer from the API server" : http
                await events.record(source(for: f.action), type: "Warning", reason: "ReplicationFailed",
                                    message: "\(f.action.kind.rawValue) \(ns)/\(f.action.name) failed: \(why)")
            }
        }
        // Writes the applier skipped (a replacement whose delete failed) are neither failed nor done.
        for a in plan.actions where writer.done.contains(FencedWriter.key(a)) {
            logger.info("replicated", metadata: ["namespace": "\(ns)", "action": "\(a.kind.rawValue)", "name": "\(a.name)", "reason": "\(a.reason)"])
        }
        var conflicts = 0
        for a in plan.actions where a.kind == .report && a.reason.hasPrefix("conflict") {
            conflicts += 1
            if canWrite(), await events.record(source(for: a), type: "Warning", reason: "ReplicaConflict", message: "\(ns)/\(a.name): \(a.reason)") {
                metrics.conflict()
            }
        }
        let desired = plan.replicas.filter { $0.metadata.namespace == ns }.count
        metrics.setReplicaStates(namespace: ns, ["in_sync": max(0, desired - failedSecrets), "failed": failedSecrets, "conflict": conflicts])
        return result.failures.isEmpty
    }

    /// Records a write that succeeded (the last of its kind in `w`): its watch event is recognised (`settle`), and the
    /// next reconcile of `ns` waits until the caches show it.
    private func expect(_ kind: ReplicationAction.Kind, _ w: KubeReplicationWriter, in ns: String) {
        let x: Expectation?
        let deadline = ContinuousClock.now + Self.expectationTimeout
        switch kind {
        case .create, .update:
            guard let s = w.writtenSecrets.last else { return }
            x = Expectation(kind: .replicas, name: s.metadata.name ?? "", resourceVersion: s.metadata.resourceVersion, deleted: false, deadline: deadline)
        case .delete:
            x = w.deletedSecrets.last.map { Expectation(kind: .replicas, name: $0.name ?? "", resourceVersion: $0.resourceVersion, deleted: true, deadline: deadline) }
        case .patchServiceAccount:
            x = w.patchedServiceAccounts.last.map {
                Expectation(kind: .serviceAccounts, name: $0.metadata.name ?? "", resourceVersion: $0.metadata.resourceVersion, deleted: false, deadline: deadline)
            }
        default:
            x = nil
        }
        if let x { expectations.withLock { $0[ns, default: []].append(x) } }
    }

    /// An event for one object ends the waits it answers: an event at the written version or later (a deletion
    /// carries the version it was deleted at, so the deletion of an older object does not answer a new create).
    /// Returns whether the event is this process's own create, update or patch (same `resourceVersion`).
    @discardableResult
    private func settle(_ ns: String, _ kind: Kind, _ name: String, _ resourceVersion: String?, deleted: Bool) -> Bool {
        expectations.withLock { e in
            guard let list = e[ns], let resourceVersion else { return false }
            var own = false
            let rest = list.filter { x in
                guard x.kind == kind, x.name == name else { return true }
                if resourceVersion == x.resourceVersion {
                    own = own || (!deleted && !x.deleted)
                    return false
                }
                return !Self.newer(resourceVersion, than: x.resourceVersion)
            }
            e[ns] = rest.isEmpty ? nil : rest
            return own
        }
    }

    /// Whether a write of this process in `ns` is not yet in the caches (and not past its deadline).
    private func awaitsOwnWrites(_ ns: String) -> Bool {
        let now = ContinuousClock.now
        let (waiting, expired) = expectations.withLock { e -> (Bool, Int) in
            guard let list = e[ns] else { return (false, 0) }
            let unseen = caches.withLock { c in list.filter { !Self.observed($0, in: c, ns) } }
            let waiting = unseen.filter { $0.deadline > now }
            e[ns] = waiting.isEmpty ? nil : waiting
            return (!waiting.isEmpty, unseen.count - waiting.count)
        }
        if expired > 0 {
            logger.debug("own writes not seen in the caches in time; planning without them", metadata: ["namespace": "\(ns)", "writes": "\(expired)"])
        }
        return waiting
    }

    private static func observed(_ x: Expectation, in c: Caches, _ ns: String) -> Bool {
        let cached: ObjectMeta?
        switch x.kind {
        case .replicas: cached = c.replicas[ns]?[x.name]?.metadata
        case .serviceAccounts: cached = c.serviceAccounts[ns]?[x.name]?.metadata
        default: return true
        }
        guard let cached else {
            // Gone: a deletion was seen; a ServiceAccount deleted since its patch needs nothing more. A written
            // replica deleted since has usually ended the wait already (`settle`); if its deletion was seen before
            // the write was recorded, the wait ends at the deadline.
            return x.deleted || x.kind == .serviceAccounts
        }
        if x.deleted { return newer(cached.resourceVersion, than: x.resourceVersion) }
        return cached.resourceVersion == x.resourceVersion || newer(cached.resourceVersion, than: x.resourceVersion)
    }

    /// Whether resourceVersion `a` is later than `b`. They are opaque to clients, but the API server's (etcd
    /// revisions) are integers; anything else compares as not newer, and the wait ends at the deadline.
    static func newer(_ a: String?, than b: String?) -> Bool {
        guard let a = a.flatMap({ UInt64($0) }), let b = b.flatMap({ UInt64($0) }) else { return false }
        return a > b
    }

    /// A write refused because the cache was behind (409: a newer version, a precondition, an object created
    /// meanwhile; 404: the object or namespace went away), or skipped because this process may no longer write:
    /// retried with backoff, not an Event.
    static func isStale(_ e: ReplicationWriteError) -> Bool {
        e.code == 409 || e.code == 404 || e.code == FencedWriter.notLeader
    }

    /// The plan's actions in `ns`. The planner sees only `ns` and its objects; rules listing target namespaces by
    /// name are narrowed to `ns` first, or every reconcile would also report each other listed namespace as not
    /// found (reports thrown away here, but built and sorted: quadratic work on a source change).
    private func planFor(_ ns: String, _ state: ReplicationState) -> ReplicationPlan {
        var scoped = policy
        for i in scoped.rules.indices where !scoped.rules[i].targets.namespaces.isEmpty {
            scoped.rules[i].targets.namespaces = listedTargets[i].contains(ns) ? [ns] : []
        }
        let full = ReplicationPlanner.plan(scoped, state)
        return ReplicationPlan(policy: full.policy, actions: full.actions.filter { $0.namespace == ns },
                               replicas: full.replicas, serviceAccounts: full.serviceAccounts)
    }

    /// The source Secret an action's Event is attached to: the rule's named source, or (selector rules) the source
    /// of the same name.
    private func source(for action: ReplicationAction) -> EventRecorder.Object? {
        guard let ruleName = action.rules.first, let rule = policy.rules.first(where: { $0.name == ruleName }) else { return nil }
        let name = rule.source.name ?? action.name
        let key = rule.source.namespace + "/" + name
        let uid = caches.withLock { c in c.sources.values.lazy.compactMap { $0[key] }.first?.metadata.uid }
        return EventRecorder.Object(kind: "Secret", apiVersion: "v1", namespace: rule.source.namespace, name: name, uid: uid)
    }
}

/// Passes writes to the cluster writer only while this process may write (checked before every write, so a
/// reconcile that started before leadership was lost stops at its next write), and remembers each write's outcome.
struct FencedWriter: ReplicationWriter {
    static let notLeader = -1
    var inner: KubeReplicationWriter
    let canWrite: @Sendable () -> Bool
    /// Called after each write that succeeded, with its kind and the writer holding its result (last in its list).
    var afterWrite: @Sendable (ReplicationAction.Kind, KubeReplicationWriter) -> Void = { _, _ in }
    var errors: [String: ReplicationWriteError] = [:]
    /// The `key` of each write that succeeded.
    var done: Set<String> = []

    static func key(_ a: ReplicationAction) -> String { key(a.kind, a.namespace, a.name) }
    static func key(_ kind: ReplicationAction.Kind, _ ns: String, _ name: String) -> String { "\(kind.rawValue)/\(ns)/\(name)" }

    private mutating func run(_ kind: ReplicationAction.Kind, _ ns: String, _ name: String,
                              _ body: (inout KubeReplicationWriter) async throws(ReplicationWriteError) -> Void) async throws(ReplicationWriteError) {
        guard canWrite() else {
            let e = ReplicationWriteError("\(kind.rawValue) \(ns)/\(name): skipped, this process is no longer the leader", code: Self.notLeader)
            errors[Self.key(kind, ns, name)] = e
            throw e
        }
        do {
            try await body(&inner)
            done.insert(Self.key(kind, ns, name))
            afterWrite(kind, inner)
        } catch {
            errors[Self.key(kind, ns, name)] = error
            throw error
        }
    }

    mutating func create(_ secret: Secret) async throws(ReplicationWriteError) {
        try await run(.create, secret.metadata.namespace ?? "", secret.metadata.name ?? "") { (w) throws(ReplicationWriteError) in try await w.create(secret) }
    }

    mutating func update(_ secret: Secret, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        try await run(.update, secret.metadata.namespace ?? "", secret.metadata.name ?? "") { (w) throws(ReplicationWriteError) in
            try await w.update(secret, precondition: precondition)
        }
    }

    mutating func delete(namespace: String, name: String, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        try await run(.delete, namespace, name) { (w) throws(ReplicationWriteError) in try await w.delete(namespace: namespace, name: name, precondition: precondition) }
    }

    mutating func patchServiceAccount(namespace: String, name: String, addImagePullSecrets: [String], precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        try await run(.patchServiceAccount, namespace, name) { (w) throws(ReplicationWriteError) in
            try await w.patchServiceAccount(namespace: namespace, name: name, addImagePullSecrets: addImagePullSecrets, precondition: precondition)
        }
    }
}
