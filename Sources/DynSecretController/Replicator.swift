public import DynSecretCore
public import DynSecretKube
internal import Foundation
public import Logging
internal import Synchronization

/// Runs one replication policy across its clusters: the hub (`local`, where the controller runs and the sources
/// are read) and each member cluster the policy declares, each as a `ClusterReplication` (its own client, compact
/// cache, work queue of `ReplicationKey`s, workers and backoff), so one slow or unreachable member is one slow
/// queue. Writes happen only while `canWrite()` says so (the leader), and never before a cluster's informers have
/// completed their first list.
///
/// Every source version seen is handed to `onSource` (the at-rest store); a source change queues every namespace of
/// every cluster.
public final class Replicator: Sendable {
    /// Tuning.
    public struct Options: Sendable {
        /// Workers per cluster: target namespaces reconciled at once. Their requests share the client's limit
        /// (`--max-requests`); twice as many workers as requests keeps that limit busy while other workers plan.
        public var workers = 32
        /// Every target namespace is reconciled again this often (a safety net; watches drive normal work).
        public var resync: Duration = .seconds(600)
        /// This hub's name (`--cluster-name`), written to every replica as `dynsecret.io/source-cluster`.
        public var clusterName: String?
        /// The kubeconfig whose contexts `context`/`contextPattern` members name (`--member-kubeconfig`).
        public var memberKubeconfig: String?
        public init() {}
    }

    public let policy: ReplicationPolicy
    private let hub: ClusterReplication
    private let members = Locked<[String: ClusterReplication]>([:])
    private let settings: ClusterReplication.Settings
    private let hubClient: KubeClient
    /// The credentials minted so far, by name (a failed refresh keeps the last good one).
    private let minted = Locked<[String: MintedCredential]>([:])
    /// The hub, for the closures every cluster shares; emptied when `run()` ends, which breaks the cycle
    /// hub → settings → closures → hub (so a replaced policy's caches are freed).
    private let hubBox = Locked<ClusterReplication?>(nil)

    public init(policy: ReplicationPolicy, client: KubeClient, options: Options = Options(), metrics: ControllerMetrics,
                events: EventRecorder, logger: Logger, clock: any Clock<Duration> = ContinuousClock(),
                canWrite: @escaping @Sendable () -> Bool, onSource: @escaping @Sendable (Secret) -> Void = { _ in }) {
        self.policy = policy
        hubClient = client
        let members = self.members
        let hubBox = self.hubBox
        let minted = self.minted
        let mintedRules = policy.rules.filter(\.source.isMinted)
        let mintedSources: @Sendable () -> [SourceObject] = {
            let m = minted.value.withLock { $0 }
            return mintedRules.compactMap { MintedCredential.source($0.source.credentials, m) }
        }
        let settings = ClusterReplication.Settings(policy: policy, options: options, metrics: metrics, events: events, logger: logger, clock: clock,
                                                   canWrite: canWrite,
                                                   hubSources: { (hubBox.value.withLock { $0 }?.cache.sourceObjects ?? []) + mintedSources() },
                                                   hubSynced: { hubBox.value.withLock { $0 }?.hasSynced ?? false },
                                                   mintedSources: mintedSources,
                                                   sourceUID: { kind, key in hubBox.value.withLock { $0 }?.cache.sourceUID(kind, key) })
        self.settings = settings
        hub = ClusterReplication(scope: ReplicationScope(hub: options.clusterName), client: client, isHub: true, settings: settings, clusterEvents: events) { s, deleted in
            // ConfigMaps are not secret: only Secret sources go to the at-rest store.
            if !deleted, s.kind == .secret, policy.rules.contains(where: { ReplicationPlanner.isSource(s, of: $0) }) {
                onSource(Secret(metadata: s.metadata, type: s.type, data: s.data, immutable: s.immutable))
            }
            for m in members.value.withLock({ Array($0.values) }) { m.enqueueAll() }
        }
        hubBox.value.withLock { $0 = hub }
    }

    /// True once the hub's informers have completed a list (members never hold up readiness).
    public var hasSynced: Bool { hub.hasSynced }

    /// Objects held in the caches of every cluster (for memory checks and logs).
    public var cachedObjects: Int { hub.cache.count + members.value.withLock { $0.values.reduce(0) { $0 + $1.cache.count } } }

    /// Queues every known namespace of every cluster (after a sync, a source change, a resync, or on becoming leader).
    public func enqueueAll() {
        hub.enqueueAll()
        for m in members.value.withLock({ Array($0.values) }) { m.enqueueAll() }
    }

    /// Runs every cluster until the task is cancelled or `stop()` is called; returns after in-flight reconciles
    /// finished.
    public func run() async {
        settings.metrics.register(cluster: ReplicationKey.localCluster)
        await withTaskGroup(of: Void.self) { group in
            if policy.isMultiCluster {
                group.addTask { await self.runMembers() }
            }
            for c in policy.credentials {
                settings.metrics.register(credential: c.name)
                group.addTask { await self.mintLoop(c) }
            }
            // The hub ends on stop (its queue shuts down) or cancellation; then the members go too (they may also
            // have ended first: a pattern matching no context leaves none).
            await hub.run()
            group.cancelAll()
        }
        hubBox.value.withLock { $0 = nil }
        members.value.withLock { $0.removeAll() }
    }

    /// Stops taking work in every cluster and waits for the reconciles in flight; `run()` then returns.
    public func stop() async {
        let all = [hub] + members.value.withLock { Array($0.values) }
        await withTaskGroup(of: Void.self) { group in
            for r in all { group.addTask { await r.stop() } }
        }
    }

    // MARK: minted credentials

    /// Mints `credential` for as long as the policy runs: again when the refresh rule says (from the lifetime the
    /// provider reported), and after a failure with jittered exponential backoff (1 s doubling to 5 min) — a
    /// failed mint never replaces or removes the credential in use, so the copies stay until it really expires.
    /// Every new credential queues every namespace of every cluster; an unchanged one writes nothing.
    private func mintLoop(_ credential: MintedCredentialSource) async {
        let logger = settings.logger
        var backoff: Duration = .seconds(1)
        var failures = 0
        while !Task.isCancelled {
            let started = Date()
            do {
                let m = try await credential.mint()
                let now = Date().timeIntervalSince1970
                let lifetime = Double(m.lifetime.components.seconds) + Double(m.lifetime.components.attoseconds) / 1e18
                let changed = minted.value.withLock { all -> Bool in
                    let old = all[credential.name]
                    all[credential.name] = m
                    return old?.auths != m.auths
                }
                settings.metrics.minted(credential.name, success: true, at: now, expiry: started.timeIntervalSince1970 + lifetime)
                if failures > 0 { logger.info("credential minted again", metadata: ["credential": "\(credential.name)", "failures": "\(failures)"]) }
                if m.lifetime <= .zero {
                    logger.warning("credential reported no lifetime; used, and minted again after the minimum interval",
                                   metadata: ["credential": "\(credential.name)", "interval": "\(MintedCredentialSource.noLifetimeInterval)"])
                }
                failures = 0
                backoff = .seconds(1)
                if changed { enqueueAll() }
                do { try await settings.clock.sleep(for: credential.refreshDelay(lifetime: m.lifetime)) } catch { return }
            } catch {
                failures += 1
                settings.metrics.minted(credential.name, success: false, at: Date().timeIntervalSince1970, expiry: nil)
                logger.warning("credential refresh failed; the credential in use stays", metadata: [
                    "credential": "\(credential.name)", "failures": "\(failures)", "error": "\(error.message.prefix(512))",
                ])
                let jittered = backoff * Double.random(in: 0.8...1.2)
                do { try await settings.clock.sleep(for: jittered) } catch { return }
                backoff = min(backoff * 2, .seconds(300))
            }
        }
    }

    // MARK: members

    private func runMembers() async {
        let resolved = await hubClient.memberClusters(of: policy, memberKubeconfig: settings.options.memberKubeconfig)
        await withTaskGroup(of: Void.self) { group in
            for m in resolved {
                if m.isDuplicate, case .failure(let e) = m.config {
                    // The first entry of that name runs; this one never does (two replications on one cluster).
                    settings.logger.error("member cluster not started", metadata: ["cluster": "\(m.name)", "error": "\(e.message)"])
                    continue
                }
                settings.metrics.register(cluster: m.name)
                settings.metrics.setClusterUp(m.name, false)
                group.addTask { await self.runMember(m) }
            }
        }
    }

    /// One member for as long as the policy runs: its replication with the configuration resolved now, restarted
    /// with the new one when its kubeconfig Secret changes; an unresolvable configuration is retried with backoff.
    private func runMember(_ initial: ResolvedMember) async {
        let logger = settings.logger
        var secretRef: (namespace: String, name: String, key: String)?
        if let r = initial.kubeconfigSecret, r.count == 3 { secretRef = (r[0], r[1], r[2]) }
        var member = initial
        var data = initial.kubeconfigData
        var backoff: Duration = .seconds(1)
        while !Task.isCancelled {
            let config: KubeConfig
            switch member.config {
            case .success(let c): config = c
            case .failure(let e):
                logger.warning("member cluster cannot be reached: configuration", metadata: ["cluster": "\(member.name)", "error": "\(e.message)"])
                settings.metrics.setClusterUp(member.name, false)
                do { try await settings.clock.sleep(for: backoff) } catch { return }
                backoff = min(backoff * 2, .seconds(30))
                if let secretRef { (member.config, data) = await hubClient.memberKubeconfig(secretRef.namespace, secretRef.name, secretRef.key) }
                continue
            }
            backoff = .seconds(1)
            let client = KubeClient(config: config, maxConcurrentRequests: 16, observer: settings.metrics.observer(cluster: member.name))
            let recorder = EventRecorder(client: client, instance: settings.events.instanceName, logger: logger)
            let replication = ClusterReplication(scope: member.scope(hub: settings.options.clusterName), client: client, isHub: false,
                                                 onlyNamespaces: member.namespaces, settings: settings, clusterEvents: recorder) { _, _ in }
            members.value.withLock { $0[member.name] = replication }
            logger.info("member cluster started", metadata: ["cluster": "\(member.name)", "server": "\(config.server)"])
            // Runs until cancelled, or until the member's kubeconfig Secret changes (then again with the new one).
            let used = data
            let changed = await withTaskGroup(of: (config: Result<KubeConfig, KubeConfigError>, data: [UInt8]?)?.self) { group in
                group.addTask { await replication.run(); return nil }
                group.addTask { await self.reportUp(replication); return nil }
                if let secretRef {
                    group.addTask { await self.kubeconfigChange(secretRef, from: used) }
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first
            }
            members.value.withLock { $0[member.name] = nil }
            guard let changed else { return }
            logger.info("member cluster kubeconfig changed; reconnecting", metadata: ["cluster": "\(member.name)"])
            (member.config, data) = changed
        }
    }

    /// Keeps `dynsecret_cluster_up` current for a member.
    private func reportUp(_ r: ClusterReplication) async {
        while !Task.isCancelled {
            settings.metrics.setClusterUp(r.name, r.cache.isHealthy)
            do { try await settings.clock.sleep(for: .seconds(1)) } catch { return }
        }
    }

    /// Watches a member's kubeconfig Secret in the hub; returns it (configuration and bytes) once its kubeconfig
    /// differs from `current` (read from the watch event itself, so a failed read never restarts a healthy member).
    private func kubeconfigChange(_ ref: (namespace: String, name: String, key: String), from current: [UInt8]?) async
        -> (config: Result<KubeConfig, KubeConfigError>, data: [UInt8]?)? {
        let informer = Informer(client: hubClient, resource: .secrets, namespace: ref.namespace,
                                options: ListOptions(fieldSelector: "metadata.name=\(ref.name)"), clock: settings.clock) { o in
            try? Secret(kubeJSON: o)
        }
        for await event in informer.events() {
            let next: (config: Result<KubeConfig, KubeConfigError>, data: [UInt8]?)
            switch event {
            case .added(let s), .modified(let s):
                next = KubeClient.memberKubeconfig(in: s, ref.namespace, ref.name, ref.key)
            case .deleted:
                next = (.failure(KubeConfigError("kubeconfig Secret \(ref.namespace)/\(ref.name): deleted")), nil)
            case .synced: continue
            }
            if next.data == current { continue }
            return next
        }
        return nil
    }
}

/// A value behind a lock that closures can share.
final class Locked<T: Sendable>: Sendable {
    let value: Mutex<T>
    init(_ v: T) { value = Mutex(v) }
}

/// One cluster's replication: its compact cache (`ClusterCache`), a work queue of its namespaces, workers that
/// reconcile one key at a time (`Reconciler`: plan, read before create, fenced writes), the expectations that
/// recognise its own writes, and a resync loop.
final class ClusterReplication: Sendable {
    /// What every cluster of a policy shares.
    struct Settings: Sendable {
        let policy: ReplicationPolicy
        let options: Replicator.Options
        let metrics: ControllerMetrics
        /// Records Events in the hub (on sources).
        let events: EventRecorder
        let logger: Logger
        let clock: any Clock<Duration>
        let canWrite: @Sendable () -> Bool
        let hubSources: @Sendable () -> [SourceObject]
        /// Whether the hub's caches (its sources) are complete.
        let hubSynced: @Sendable () -> Bool
        /// The sources the controller mints (the hub's planner adds them to its cache's).
        let mintedSources: @Sendable () -> [SourceObject]
        let sourceUID: @Sendable (ReplicatedKind, String) -> String?
    }

    let name: String
    let cache: ClusterCache
    let queue: WorkQueue<ReplicationKey>
    private let isMember: Bool
    private let expectations = WriteExpectations()
    private let reconciler: Reconciler
    private let settings: Settings
    private let onSource: @Sendable (SourceObject, Bool) -> Void

    init(scope: ReplicationScope, client: KubeClient, isHub: Bool, onlyNamespaces: [String] = [], settings: Settings, clusterEvents: EventRecorder,
         onSource: @escaping @Sendable (SourceObject, Bool) -> Void) {
        name = scope.cluster
        isMember = !isHub
        self.settings = settings
        self.onSource = onSource
        queue = WorkQueue(clock: settings.clock)
        let logger = isHub ? settings.logger : {
            var l = settings.logger
            l[metadataKey: "cluster"] = "\(scope.cluster)"
            return l
        }()
        let cache = ClusterCache(name: scope.cluster, policy: settings.policy, client: client, readsSources: isHub, onlyNamespaces: onlyNamespaces,
                                 clock: settings.clock, logger: logger)
        self.cache = cache
        let hubSources: (@Sendable () -> [SourceObject])? = isHub ? nil : settings.hubSources
        let sourceUID: @Sendable (ReplicatedKind, String) -> String?
        if isHub { sourceUID = { @Sendable kind, key in cache.sourceUID(kind, key) } } else { sourceUID = settings.sourceUID }
        let none: @Sendable () -> [SourceObject] = { [] }
        let minted: @Sendable () -> [SourceObject] = isHub ? settings.mintedSources : none
        reconciler = Reconciler(policy: settings.policy, scope: scope, hubSources: hubSources, mintedSources: minted, client: client, cache: cache,
                                expectations: expectations, metrics: settings.metrics, events: settings.events, clusterEvents: clusterEvents,
                                logger: logger, canWrite: settings.canWrite, sourceUID: sourceUID)
    }

    var hasSynced: Bool { cache.hasSynced }

    func enqueueAll() {
        for n in cache.namespaceNames { queue.add(ReplicationKey(cluster: name, namespace: n)) }
        settings.metrics.setQueueDepth(queue.depth, cluster: name)
    }

    /// Runs informers and workers until the task is cancelled or the queue shuts down.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.cache.run { self.changed($0) } }
            group.addTask { await self.resyncLoop() }
            // Workers end when the queue shuts down (stop) or the task is cancelled; then the informers go too.
            await withTaskGroup(of: Void.self) { workers in
                for _ in 0..<max(1, settings.options.workers) { workers.addTask { await self.worker() } }
            }
            group.cancelAll()
        }
    }

    func stop() async {
        await queue.shutDown(drain: true)
    }

    /// What a change in the cache queues. Nothing is queued before the caches have synced (then everything is).
    private func changed(_ change: ClusterCache.Change) {
        let synced = cache.hasSynced
        switch change {
        case .namespace(let name, let deleted):
            if deleted { settings.metrics.setReplicaStates(key(name), nil) }
            if synced { queue.add(key(name)) }
        case .replica(let r, let deleted):
            // The watch event of this process's own create or update needs no reconcile (the write came from one),
            // which halves the work of a source change.
            let own = expectations.settle(key(r.namespace), .replica(r.kind), r.name, r.resourceVersion, deleted: deleted)
            if synced && !own { queue.add(key(r.namespace)) }
        case .source(let s, let deleted):
            onSource(s, deleted)
            if synced { enqueueAll() }
        case .serviceAccount(let namespace, let name, let resourceVersion, let deleted):
            expectations.settle(key(namespace), .serviceAccount, name, resourceVersion, deleted: deleted)
            if synced { queue.add(key(namespace)) }
        case .synced:
            enqueueAll()
        }
        settings.metrics.setQueueDepth(queue.depth, cluster: name)
    }

    private func key(_ namespace: String) -> ReplicationKey { ReplicationKey(cluster: name, namespace: namespace) }

    private func resyncLoop() async {
        while !Task.isCancelled {
            do { try await settings.clock.sleep(for: settings.options.resync) } catch { return }
            if hasSynced { enqueueAll() }
        }
    }

    private func worker() async {
        while let key = await queue.get() {
            defer {
                queue.done(key)
                settings.metrics.setQueueDepth(queue.depth, cluster: name)
            }
            // A member plans with the hub's sources: until the hub has them, its keys wait (an empty source list
            // would read as every source deleted).
            if isMember && !settings.hubSynced() {
                queue.add(key, after: .milliseconds(200))
                continue
            }
            guard hasSynced, settings.canWrite() else {
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
            settings.metrics.reconciled(success: outcome != .failed, duration: ContinuousClock.now - start)
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
