internal import DynSecretCore
internal import DynSecretKube
internal import Logging
internal import Synchronization

/// The key of one unit of replication work: a target namespace of one cluster (`local` is the cluster the
/// controller runs in).
public struct ReplicationKey: Hashable, Sendable, CustomStringConvertible {
    public var cluster: String
    public var namespace: String

    public init(cluster: String = ReplicationKey.localCluster, namespace: String) {
        self.cluster = cluster
        self.namespace = namespace
    }

    /// The name of the controller's own cluster.
    public static let localCluster = "local"

    public var description: String { cluster == Self.localCluster ? namespace : cluster + "/" + namespace }
}

/// What the controller knows of one cluster, kept as compactly as the planner allows (design §11): informers on what
/// the policy manages only — all Namespaces (name, labels, terminating), objects of each kind the policy replicates
/// (Secrets, and ConfigMaps only when a rule replicates them) labelled `dynsecret.io/replica=true` (`TargetObject`:
/// metadata, markers and the hash of the stored content, never the data), the ServiceAccounts the policy patches (by
/// name), and, where the sources live, the source objects (whole, as `SourceObject`, hashed once per version). Repeated strings and label and annotation maps share storage (`ReplicationInterner`).
///
/// Every change is handed to `onChange` after the cache holds it. Thread-safe; the informers' caches are the store.
final class ClusterCache: Sendable {
    enum Change: Sendable {
        case namespace(name: String, deleted: Bool)
        case replica(TargetObject, deleted: Bool)
        case source(SourceObject, deleted: Bool)
        case serviceAccount(namespace: String, name: String, resourceVersion: String?, deleted: Bool)
        /// Every informer has completed a list (again, after a relist).
        case synced
    }

    let name: String
    /// All namespaces, watched; nil in a namespaced member, whose namespaces are `fixedNamespaces`.
    private let namespaces: Informer<ReplicationNamespace>?
    private let fixedNamespaces: [String: ReplicationNamespace]
    /// Replicas by kind, in `ReplicationPolicy.kinds` order (one informer per namespace in a namespaced member).
    private let replicas: [(kind: ReplicatedKind, informer: Informer<TargetObject>)]
    private let sources: [Informer<SourceObject>]
    private let serviceAccounts: [Informer<ServiceAccount>]
    private let interner: SharedInterner
    /// The sources in planning order, built on first use after a source changed (under the lock, so a snapshot
    /// built from what the informers held before a change can never be stored after that change's invalidation).
    private let sourceSnapshot = Mutex<[SourceObject]?>(nil)
    private let syncedInformers = Mutex<Set<Int>>([])
    private let allSynced = Atomic<Bool>(false)
    private let logger: Logger

    /// The caches for `policy` in cluster `name`; `readsSources`: this is the cluster the sources are read from.
    /// With `onlyNamespaces` (a namespaced member: Roles in those namespaces, no cluster-wide access), nothing is
    /// watched cluster-wide: those namespaces are taken as they are (named, labelled only with
    /// `kubernetes.io/metadata.name`), and replicas and ServiceAccounts are watched in each.
    init(name: String, policy: ReplicationPolicy, client: KubeClient, readsSources: Bool, onlyNamespaces: [String] = [], clock: any Clock<Duration>, logger: Logger) {
        self.name = name
        self.logger = logger
        let interner = SharedInterner()
        self.interner = interner
        let scoped: [String?] = onlyNamespaces.isEmpty ? [nil] : onlyNamespaces
        if onlyNamespaces.isEmpty {
            namespaces = Informer(client: client, resource: .namespaces, clock: clock) { o in
                interner.lock.withLock { ReplicationNamespace(apiObject: o, interner: &$0) }
            }
            fixedNamespaces = [:]
        } else {
            namespaces = nil
            fixedNamespaces = Dictionary(onlyNamespaces.map { ($0, ReplicationNamespace.assumed($0)) }, uniquingKeysWith: { a, _ in a })
        }
        let requestedKinds = policy.requestedKinds
        replicas = policy.kinds.flatMap { kind in
            scoped.map { ns in
                (kind, ClusterCache.replicaInformer(kind, namespace: ns, requests: requestedKinds.contains(kind), client: client, clock: clock,
                                                    interner: interner, logger: logger))
            }
        }
        var sources: [Informer<SourceObject>] = []
        var seen: Set<String> = []
        for rule in policy.rules where readsSources && !rule.source.isMinted {
            var opts = ListOptions()
            if let name = rule.source.name {
                opts.fieldSelector = "metadata.name=\(name)"
            } else if let selector = rule.source.selector, !selector.queryString.isEmpty {
                opts.labelSelector = selector.queryString
            }
            let kind = rule.source.kind
            let id = "\(kind.rawValue)|\(rule.source.namespace)|\(opts.fieldSelector ?? "")|\(opts.labelSelector ?? "")"
            if seen.insert(id).inserted {
                sources.append(Informer(client: client, resource: .of(kind), namespace: rule.source.namespace, options: opts, clock: clock) { o in
                    switch ClusterCache.decode(o, kind, logger: logger) {
                    case .secret(let s)?: SourceObject(s)
                    case .configMap(let c)?: SourceObject(c)
                    case nil: nil
                    }
                })
            }
        }
        self.sources = sources
        serviceAccounts = policy.serviceAccountNames.flatMap { n in
            scoped.map { ns in
                Informer(client: client, resource: .serviceAccounts, namespace: ns, options: ListOptions(fieldSelector: "metadata.name=\(n)"), clock: clock) { o in
                    try? ServiceAccount(kubeJSON: o)
                }
            }
        }
    }

    /// The replicas of `kind` (labelled `dynsecret.io/replica=true`), compact. When the kind takes requests (pull
    /// mode), every object of it is watched and replicas and requests are kept: a request carries only an
    /// annotation, which no selector can ask for.
    private static func replicaInformer(_ kind: ReplicatedKind, namespace: String?, requests: Bool, client: KubeClient, clock: any Clock<Duration>,
                                        interner: SharedInterner, logger: Logger) -> Informer<TargetObject> {
        let options = requests ? ListOptions() : ListOptions(labelSelector: "\(ReplicaMarkers.replicaLabel)=true")
        var include: (@Sendable (JSONValue) -> Bool)?
        if requests { include = { @Sendable o in ReplicaMarkers.isTargetCandidate(apiObject: o, requests: true) } }
        return Informer(client: client, resource: .of(kind), namespace: namespace, options: options, clock: clock, include: include) { o in
            if let target = interner.lock.withLock({ TargetObject(apiObject: o, kind: kind, interner: &$0) }) { return target }
            // Not what the API server sends: the strict decoder says why (and logs it); it is not cached.
            switch ClusterCache.decode(o, kind, logger: logger) {
            case .secret(let s)?: return interner.lock.withLock { TargetObject(s, interner: &$0) }
            case .configMap(let c)?: return interner.lock.withLock { TargetObject(c, interner: &$0) }
            case nil: return nil
            }
        }
    }

    private static func decode(_ o: JSONValue, _ kind: ReplicatedKind, logger: Logger) -> ReplicaObject? {
        do {
            return try ReplicaObject(kind, kubeJSON: o)
        } catch {
            let m = o["metadata"]
            logger.warning("ignoring an object that does not decode",
                           metadata: ["kind": "\(kind.rawValue)", "object": "\(m?["namespace"]?.stringValue ?? "")/\(m?["name"]?.stringValue ?? "")",
                                      "error": "\(error.message)"])
            return nil
        }
    }

    private var informerCount: Int { (namespaces == nil ? 0 : 1) + replicas.count + sources.count + serviceAccounts.count }

    /// True once every informer has completed a list.
    var hasSynced: Bool { allSynced.load(ordering: .acquiring) }

    /// Objects held (for memory checks and logs).
    var count: Int {
        (namespaces?.count ?? fixedNamespaces.count) + replicas.reduce(0) { $0 + $1.informer.count } + sources.reduce(0) { $0 + $1.count } + serviceAccounts.reduce(0) { $0 + $1.count }
    }

    /// The names of the cluster's namespaces.
    var namespaceNames: [String] { namespaces.map { Array($0.objects(in: "").keys) } ?? Array(fixedNamespaces.keys) }

    /// Runs the informers until cancelled, handing every change to `onChange`.
    func run(_ onChange: @escaping @Sendable (Change) -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            if let namespaces {
                group.addTask { await self.consume(0, namespaces, onChange) { o, deleted in .namespace(name: o.name, deleted: deleted) } }
            }
            let r = replicas.count
            for (i, entry) in replicas.enumerated() {
                group.addTask { await self.consume(1 + i, entry.informer, onChange) { o, deleted in .replica(o, deleted: deleted) } }
            }
            for (i, informer) in sources.enumerated() {
                group.addTask {
                    await self.consume(1 + r + i, informer, onChange, beforeEach: { self.sourceSnapshot.withLock { $0 = nil } }) { o, deleted in
                        .source(o, deleted: deleted)
                    }
                }
            }
            for (i, informer) in serviceAccounts.enumerated() {
                group.addTask {
                    await self.consume(1 + r + self.sources.count + i, informer, onChange) { o, deleted in
                        .serviceAccount(namespace: o.metadata.namespace ?? "", name: o.metadata.name ?? "", resourceVersion: o.metadata.resourceVersion, deleted: deleted)
                    }
                }
            }
        }
    }

    private func consume<O: Sendable>(_ index: Int, _ informer: Informer<O>, _ onChange: @Sendable (Change) -> Void,
                                      beforeEach: () -> Void = {}, _ change: (O, Bool) -> Change) async {
        await informer.run { event in
            beforeEach()
            switch event {
            case .added(let o), .modified(let o): onChange(change(o, false))
            case .deleted(let o): onChange(change(o, true))
            case .synced:
                let first = syncedInformers.withLock { $0.insert(index).inserted && $0.count == informerCount }
                if first {
                    allSynced.store(true, ordering: .releasing)
                    logger.info("caches synced", metadata: ["cluster": "\(name)", "objects": "\(count)", "informers": "\(informerCount)",
                                                             "interned": "\(interner.lock.withLock { $0.count })"])
                }
                if hasSynced { onChange(.synced) }
            }
        }
    }

    /// What the planner needs for one target namespace: the namespace, every source, the replicas there and the
    /// patched ServiceAccounts there. Nil when the namespace is not known.
    func state(of namespace: String) -> ReplicationState? {
        guard let ns = namespaces.map({ $0.object(namespace: "", name: namespace)?.object }) ?? fixedNamespaces[namespace] else { return nil }
        let sources = sourceObjects
        var targets: [TargetObject] = []
        for entry in replicas { targets += entry.informer.objects(in: namespace).values.sorted { utf8Less($0.name, $1.name) } }
        var accounts: [ServiceAccount] = []
        for informer in serviceAccounts { accounts += informer.objects(in: namespace).values }
        return ReplicationState(namespaces: [ns], sources: sources, targets: targets, serviceAccounts: accounts)
    }

    /// The cached replica of `kind` at `namespace/name`.
    func replica(_ kind: ReplicatedKind, _ namespace: String, _ name: String) -> TargetObject? {
        for entry in replicas where entry.kind == kind {
            if let o = entry.informer.object(namespace: namespace, name: name)?.object { return o }
        }
        return nil
    }

    /// The resourceVersion of the cached ServiceAccount `namespace/name`, or nil when it is not cached.
    func serviceAccountVersion(_ namespace: String, _ name: String) -> String?? {
        for informer in serviceAccounts {
            if let e = informer.object(namespace: namespace, name: name) { return .some(e.resourceVersion) }
        }
        return .none
    }

    /// Every cached source, each once, in a stable order (a member cluster's plans read the hub's). Kept as a
    /// snapshot until the next source event: every reconcile reads it, sources rarely change.
    var sourceObjects: [SourceObject] {
        sourceSnapshot.withLock { snapshot in
            if let snapshot { return snapshot }
            var seen: Set<ReplicaRef> = []
            var out: [SourceObject] = []
            for informer in self.sources {
                for (_, s) in informer.objects.sorted(by: { $0.key < $1.key }) where seen.insert(s.ref).inserted { out.append(s) }
            }
            snapshot = out
            return out
        }
    }

    /// Synced, and no informer is failing against the API server now.
    var isHealthy: Bool {
        guard hasSynced else { return false }
        let all: [InformerStatistics] = (namespaces.map { [$0.statistics] } ?? []) + replicas.map(\.informer.statistics) + sources.map(\.statistics)
            + serviceAccounts.map(\.statistics)
        return all.allSatisfy { $0.consecutiveFailures == 0 }
    }

    /// The uid of the cached source of `kind` at `namespace/name`.
    func sourceUID(_ kind: ReplicatedKind, _ key: String) -> String? {
        let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        for informer in sources {
            if let s = informer.object(namespace: parts[0], name: parts[1]), s.object.kind == kind { return s.object.metadata.uid }
        }
        return nil
    }

}

/// One interner shared by a cluster's informers.
final class SharedInterner: Sendable {
    let lock = Mutex(ReplicationInterner())
}
