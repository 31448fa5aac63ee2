/// The labels and annotations that mark a Secret as a dynsecret replica.
public enum ReplicaMarkers {
    public static let managedByLabel = "app.kubernetes.io/managed-by"
    public static let managedByValue = "dynsecret"
    public static let replicaLabel = "dynsecret.io/replica"
    public static let sourceAnnotation = "dynsecret.io/source"
    public static let sourceUIDAnnotation = "dynsecret.io/source-uid"
    public static let ruleAnnotation = "dynsecret.io/rule"
    public static let contentHashAnnotation = "dynsecret.io/content-hash"
    /// The hub that wrote the replica (`--cluster-name`): another hub's replica is never adopted, updated or pruned.
    public static let sourceClusterAnnotation = "dynsecret.io/source-cluster"
    /// On a Secret or ConfigMap in a target namespace: `NAMESPACE/NAME` of a source whose copy its namespace owner
    /// requests (pull mode, `targets.requested`). Kept on the copy (it is the request); never copied from a source.
    public static let requestAnnotation = "dynsecret.io/replicate-from"
    /// Never copied to a replica.
    public static let lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

    static let labelKeys: Set<String> = [managedByLabel, replicaLabel]
    static let annotationKeys: Set<String> = [sourceAnnotation, sourceUIDAnnotation, ruleAnnotation, contentHashAnnotation, sourceClusterAnnotation]
    static let reservedKeys = labelKeys.union(annotationKeys)

    /// The source key a pull-mode request names: `NAMESPACE/NAME` with a namespace name and an object name. Nil when
    /// the value is not of that form.
    public static func requestedSource(_ value: String) -> String? {
        guard let slash = value.firstIndex(of: "/") else { return nil }
        let ns = String(value[..<slash]), name = String(value[value.index(after: slash)...])
        guard KubeNames.dns1123LabelProblems(ns).isEmpty, KubeNames.dns1123SubdomainProblems(name).isEmpty else { return nil }
        return value
    }

    /// Whether an object with these labels and annotations is one the engine reads at a target: a replica (the
    /// `dynsecret.io/replica` label) or, when pull mode is on, a request. A controller's replica cache keeps exactly
    /// these.
    public static func isTargetCandidate(labels: [String: String], annotations: [String: String], requests: Bool) -> Bool {
        labels[replicaLabel] == "true" || (requests && annotations[requestAnnotation] != nil)
    }

    /// `isTargetCandidate` of an object as the API server returns it, read from its JSON without decoding it.
    public static func isTargetCandidate(apiObject o: JSONValue, requests: Bool) -> Bool {
        let m = o["metadata"]
        return m?["labels"]?[replicaLabel]?.stringValue == "true" || (requests && m?["annotations"]?[requestAnnotation]?.stringValue != nil)
    }

    /// Whether `meta` carries both replica labels. Necessary, not sufficient, for ownership: the planner also requires
    /// `dynsecret.io/rule` naming a rule of its policy and `dynsecret.io/source` naming the target's source.
    public static func isOwned(_ meta: ObjectMeta) -> Bool { isOwned(labels: meta.labels) }

    /// Whether `labels` holds both replica labels.
    public static func isOwned(labels: [String: String]) -> Bool {
        labels[managedByLabel] == managedByValue && labels[replicaLabel] == "true"
    }
}

/// Which cluster a plan is for, and which hub makes it.
///
/// The hub (`local`) is where the sources live: there, every source namespace of the policy is excluded from the
/// targets and a source is never a target. A member cluster (any other name) holds no sources: its plan reads
/// sources only from `ReplicationState.sources` (whole objects in the state are its own objects), and its namespaces
/// are targets like any other. Only rules whose `targets.clusters` match the cluster write there.
public struct ReplicationScope: Sendable, Equatable {
    /// The name of the hub cluster, where the controller runs and the sources are read.
    public static let localCluster = "local"

    /// The cluster planned: `local` or a member's name.
    public var cluster: String
    /// This hub's name (`--cluster-name`), written to every replica as `dynsecret.io/source-cluster`; nil writes none.
    /// A replica naming another hub — or any hub, when this one has no name — belongs to that hub.
    public var hub: String?
    /// Names by which rules may target this cluster besides its own (a `contextPattern` entry's name).
    public var aliases: [String]

    public init(cluster: String = ReplicationScope.localCluster, hub: String? = nil, aliases: [String] = []) {
        self.cluster = cluster
        self.hub = hub
        self.aliases = aliases
    }

    /// The hub's own cluster, unnamed: the single-cluster plan.
    public static let local = ReplicationScope()

    /// Whether this is the hub's own cluster.
    public var isHub: Bool { cluster == Self.localCluster }

    /// Whether `rule` writes into this cluster: an entry of its `targets.clusters` is the cluster's name, an alias,
    /// or a glob matching either.
    public func isTargeted(by rule: ReplicationRule) -> Bool {
        rule.targets.clusters.contains { entry in
            ([cluster] + aliases).contains { $0 == entry || NamespaceGlob.matches(entry, $0) }
        }
    }
}

/// A namespace as the planner sees it.
public struct ReplicationNamespace: Sendable, Equatable {
    public var name: String
    public var labels: [String: String]
    /// `status.phase == Terminating` (or a deletion timestamp): never written to.
    public var terminating: Bool

    public init(name: String, labels: [String: String] = [:], terminating: Bool = false) {
        self.name = name
        self.labels = labels
        self.terminating = terminating
    }

    /// A namespace known only by name (a namespaced member, where namespaces cannot be read): labelled only with
    /// `kubernetes.io/metadata.name`, which the API server sets on every namespace.
    public static func assumed(_ name: String) -> ReplicationNamespace {
        ReplicationNamespace(name: name, labels: ["kubernetes.io/metadata.name": name])
    }

    /// The namespace as the API server returns it (a list item or watch object); nil without `metadata.name`.
    /// Non-string label values, which the API server never returns, are ignored.
    public init?(apiObject o: JSONValue) {
        var interner = ReplicationInterner(limit: 0)
        self.init(apiObject: o, interner: &interner)
    }

    /// As `init?(apiObject:)`, sharing the storage of repeated labels through `interner`.
    public init?(apiObject o: JSONValue, interner: inout ReplicationInterner) {
        guard let name = o["metadata"]?["name"]?.stringValue else { return nil }
        var labels: [String: String] = [:]
        for m in o["metadata"]?["labels"]?.objectValue?.members ?? [] { if let v = m.value.stringValue { labels[m.key] = v } }
        let terminating = o["status"]?["phase"]?.stringValue == "Terminating" || o["metadata"]?["deletionTimestamp"]?.stringValue != nil
        self.init(name: interner.intern(name), labels: interner.intern(labels), terminating: terminating)
    }
}

/// What the planner reads: namespaces, sources, the objects found at target names (and every object carrying
/// replica markers), and ServiceAccounts.
///
/// Two forms, which may be mixed: `secrets` and `configMaps` hold whole objects (manifests, `replicate --once`,
/// tests), each taken both as a possible source and as an object at its name; `sources` and `targets` are the
/// compact form a controller caches (`SourceObject`, `TargetObject`: no replica data is kept).
public struct ReplicationState: Sendable, Equatable {
    public var namespaces: [ReplicationNamespace]
    public var secrets: [Secret]
    public var configMaps: [ConfigMap]
    public var sources: [SourceObject]
    public var targets: [TargetObject]
    public var serviceAccounts: [ServiceAccount]

    public init(namespaces: [ReplicationNamespace] = [], secrets: [Secret] = [], configMaps: [ConfigMap] = [], sources: [SourceObject] = [],
                targets: [TargetObject] = [], serviceAccounts: [ServiceAccount] = []) {
        self.namespaces = namespaces
        self.secrets = secrets
        self.configMaps = configMaps
        self.sources = sources
        self.targets = targets
        self.serviceAccounts = serviceAccounts
    }

    /// The whole objects, as the engine writes them.
    public var objects: [ReplicaObject] { secrets.map(ReplicaObject.secret) + configMaps.map(ReplicaObject.configMap) }
}

/// The precondition of an update, delete or patch: the object must still have this uid and resourceVersion.
public struct ReplicationPrecondition: Sendable, Equatable {
    public var uid: String?
    public var resourceVersion: String?
    public init(uid: String?, resourceVersion: String?) {
        self.uid = uid
        self.resourceVersion = resourceVersion
    }

    /// Both uid and resourceVersion are known: the only form an update or delete is sent with.
    public var isComplete: Bool { uid?.isEmpty == false && resourceVersion?.isEmpty == false }
}

/// One step of a plan.
public struct ReplicationAction: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case create, update, delete
        case patchServiceAccount = "patch-serviceaccount"
        case report
    }

    public var kind: Kind
    /// The kind of object written or reported on (`Secret` for a ServiceAccount patch, which names pull secrets).
    public var objectKind: ReplicatedKind
    public var namespace: String
    /// Object name, or ServiceAccount name for `patch-serviceaccount`.
    public var name: String
    /// The rule(s) the action comes from (two for a conflict between rules).
    public var rules: [String]
    /// Why: one line, never a secret value.
    public var reason: String
    /// The object to create, or the object as an update leaves it: its labels, annotations, type, data and
    /// immutability (the fields a replica update sets; the object's other fields are kept as stored).
    public var object: ReplicaObject?
    public var precondition: ReplicationPrecondition?
    /// Names appended to a ServiceAccount's `imagePullSecrets`.
    public var addImagePullSecrets: [String]
    /// For an update: the object as the plan found it (a cluster writer sends only the difference).
    public var previous: TargetObject?
    /// A report that a request (`dynsecret.io/replicate-from` on the object named) is not served: what its
    /// namespace owner needs to hear (a controller records it as an Event on that object).
    public var refusesRequest = false

    public init(_ kind: Kind, _ objectKind: ReplicatedKind = .secret, namespace: String, name: String, rules: [String], reason: String,
                object: ReplicaObject? = nil, precondition: ReplicationPrecondition? = nil, addImagePullSecrets: [String] = [],
                previous: TargetObject? = nil) {
        self.kind = kind
        self.objectKind = object?.kind ?? objectKind
        self.namespace = namespace
        self.name = name
        self.rules = rules
        self.reason = reason
        self.object = object
        self.precondition = precondition
        self.addImagePullSecrets = addImagePullSecrets
        self.previous = previous
    }

    /// Whether the action writes to the cluster.
    public var isWrite: Bool { kind != .report }

    /// The Secret written, when the object is one.
    public var secret: Secret? { object?.secret }

    /// The object acted on.
    public var ref: ReplicaRef { ReplicaRef(objectKind, namespace, name) }
}

/// The ordered actions of one planning pass, and the replicas the policy wants to exist.
public struct ReplicationPlan: Sendable, Equatable {
    public var policy: String
    public var actions: [ReplicationAction]
    /// Every replica the policy manages after the plan is applied (created, updated or already in sync), by key.
    public var replicas: [ReplicaObject]
    /// ServiceAccounts that list replicas, as they are after the plan is applied.
    public var serviceAccounts: [ServiceAccount]

    /// A plan (or part of one, such as one namespace's writes).
    public init(policy: String, actions: [ReplicationAction], replicas: [ReplicaObject] = [], serviceAccounts: [ServiceAccount] = []) {
        self.policy = policy
        self.actions = actions
        self.replicas = replicas
        self.serviceAccounts = serviceAccounts
    }

    public var writes: [ReplicationAction] { actions.filter(\.isWrite) }

    /// Number of actions of each kind.
    public func count(_ kind: ReplicationAction.Kind) -> Int { actions.lazy.filter { $0.kind == kind }.count }
}
