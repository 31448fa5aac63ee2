public import DynSecretCore

/// `ReplicationWriter` over the Kubernetes API.
///
/// Creates POST the replica (a Secret or a ConfigMap). An update with the object it was planned from (`previous`) is a
/// JSON merge patch of only what changes (labels and annotations set or removed, the whole `data` — and a ConfigMap's
/// `binaryData` — when the content differs, with removed keys as null, `immutable`) guarded by
/// `metadata.resourceVersion`, so fields the replica gained elsewhere (owner
/// references, finalizers) are kept; without `previous` it is a PUT of the object. Either way a stale
/// `resourceVersion` is a 409 Conflict;
/// deletes carry `uid` + `resourceVersion` preconditions; a ServiceAccount patch is a JSON merge patch of the whole
/// `imagePullSecrets` list (the list read for planning plus the missing names, never a duplicate) guarded by
/// `metadata.resourceVersion`. Errors carry the API server's `Status` message, never a secret value.
public struct KubeReplicationWriter: ReplicationWriter, Sendable {
    /// The client the writes go through.
    public let client: KubeClient
    /// The ServiceAccounts as read for planning, by `namespace/name`; patches append to their `imagePullSecrets`.
    public var serviceAccounts: [String: ServiceAccount]
    /// Namespace, name, uid and `resourceVersion` of each object as the API server returned it from a create or
    /// update (a controller records the version to recognise the watch events of its own writes). The answers' data
    /// is neither decoded nor kept.
    public private(set) var writtenSecrets: [ObjectMeta] = []
    /// Each object deleted: namespace, name, and the `resourceVersion` it was deleted at (the precondition's).
    public private(set) var deletedSecrets: [ObjectMeta] = []
    /// The ServiceAccounts as the API server returned them from each patch.
    public private(set) var patchedServiceAccounts: [ServiceAccount] = []

    /// A writer over `client`; `serviceAccounts` are those the plan was made from.
    public init(client: KubeClient, serviceAccounts: [ServiceAccount] = []) {
        self.client = client
        self.serviceAccounts = Dictionary(serviceAccounts.map { (Self.key($0.metadata), $0) }, uniquingKeysWith: { a, _ in a })
    }

    static func key(_ m: ObjectMeta) -> String { (m.namespace ?? "default") + "/" + (m.name ?? "") }

    /// The identity fields of an API answer.
    static func identity(_ o: JSONValue) -> ObjectMeta {
        let m = o["metadata"]
        var meta = ObjectMeta(name: m?["name"]?.stringValue, namespace: m?["namespace"]?.stringValue)
        meta.uid = m?["uid"]?.stringValue
        meta.resourceVersion = m?["resourceVersion"]?.stringValue
        return meta
    }

    private static func failure(_ verb: String, _ what: String, _ error: KubeError) -> ReplicationWriteError {
        ReplicationWriteError("\(verb) \(what): \(error.message)", code: error.httpStatus, reason: error.reason)
    }

    public mutating func create(_ object: ReplicaObject) async throws(ReplicationWriteError) {
        var o = object
        o.metadata.uid = nil
        o.metadata.resourceVersion = nil
        let what = "\(object.kind.rawValue.lowercased()) \(Self.key(o.metadata))"
        do {
            writtenSecrets.append(Self.identity(try await client.create(.of(object.kind), namespace: o.metadata.namespace, o.json)))
        } catch {
            throw Self.failure("create", what, error)
        }
    }

    public mutating func update(_ object: ReplicaObject, previous: TargetObject?, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        var o = object
        o.metadata.resourceVersion = precondition.resourceVersion
        if let uid = precondition.uid { o.metadata.uid = uid }
        let what = "\(object.kind.rawValue.lowercased()) \(Self.key(o.metadata))"
        do {
            if let previous, let rv = precondition.resourceVersion {
                let patch = Self.updatePatch(o, from: previous, resourceVersion: rv)
                writtenSecrets.append(Self.identity(try await client.mergePatch(.of(object.kind), namespace: previous.namespace, name: previous.name, patch)))
            } else {
                writtenSecrets.append(Self.identity(try await client.update(.of(object.kind), namespace: o.metadata.namespace, o.json)))
            }
        } catch {
            throw Self.failure("update", what, error)
        }
    }

    /// The JSON merge patch (RFC 7386) taking `previous` to `object`'s labels, annotations, data and immutability.
    static func updatePatch(_ object: ReplicaObject, from previous: TargetObject, resourceVersion: String) -> JSONValue {
        func mapPatch(_ new: [String: String], _ old: [String: String]) -> JSONValue? {
            var members: [(String, JSONValue)] = []
            for (k, v) in new where old[k] != v { members.append((k, .string(v))) }
            for k in old.keys where new[k] == nil { members.append((k, .null)) }
            guard !members.isEmpty else { return nil }
            return .object(JSONObject(members.sorted { utf8Less($0.0, $1.0) }))
        }
        /// `values` (encoded), and each key of `old` no longer present as null.
        func contentPatch(_ values: [String: JSONValue], removing old: [String]) -> JSONValue {
            var members = values.keys.sorted(by: utf8Less).map { ($0, values[$0]!) }
            members += old.filter { values[$0] == nil }.map { ($0, JSONValue.null) }
            return .object(JSONObject(members))
        }
        let meta = object.metadata
        var metaPatch: [(String, JSONValue)] = [("resourceVersion", .string(resourceVersion))]
        if let l = mapPatch(meta.labels, previous.labels) { metaPatch.append(("labels", l)) }
        if let a = mapPatch(meta.annotations, previous.annotations) { metaPatch.append(("annotations", a)) }
        var o: [(String, JSONValue)] = [("metadata", .object(JSONObject(metaPatch)))]
        let immutable: Bool?
        switch object {
        case .secret(let secret):
            let data = secret.mergedData
            if ReplicaContentHash.of(type: previous.type, data: data) != previous.contentHash || previous.hasStringData {
                o.append(("data", contentPatch(data.mapValues { .string(Base64.encode($0)) }, removing: previous.dataKeys)))
            }
            immutable = secret.immutable
        case .configMap(let configMap):
            if ReplicaContentHash.of(configMap) != previous.contentHash {
                o.append(("data", contentPatch(configMap.data.mapValues { .string($0) }, removing: previous.dataKeys)))
                o.append(("binaryData", contentPatch(configMap.binaryData.mapValues { .string(Base64.encode($0)) }, removing: previous.binaryDataKeys)))
            }
            immutable = configMap.immutable
        }
        if (immutable ?? false) != (previous.immutable ?? false) { o.append(("immutable", immutable.map(JSONValue.bool) ?? .null)) }
        return .object(JSONObject(o))
    }

    public mutating func delete(_ kind: ReplicatedKind, namespace: String, name: String, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        do {
            _ = try await client.delete(.of(kind), namespace: namespace, name: name,
                                        preconditions: DeletePreconditions(uid: precondition.uid, resourceVersion: precondition.resourceVersion))
            var deleted = ObjectMeta(name: name, namespace: namespace)
            deleted.resourceVersion = precondition.resourceVersion
            deletedSecrets.append(deleted)
        } catch {
            throw Self.failure("delete", "\(kind.rawValue.lowercased()) \(namespace)/\(name)", error)
        }
    }

    public mutating func patchServiceAccount(namespace: String, name: String, addImagePullSecrets: [String], precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        let key = namespace + "/" + name
        guard let sa = serviceAccounts[key] else {
            throw ReplicationWriteError("patch serviceaccount \(key): not among the ServiceAccounts read for planning")
        }
        guard let rv = precondition.resourceVersion ?? sa.metadata.resourceVersion else {
            throw ReplicationWriteError("patch serviceaccount \(key): no resourceVersion to guard the patch")
        }
        let list = ServiceAccountPatch.apply(addImagePullSecrets, to: sa.imagePullSecrets)
        let patch = JSONValue.object(JSONObject([
            ("metadata", .object(JSONObject([("resourceVersion", .string(rv))]))),
            ("imagePullSecrets", .array(list.map { .object(JSONObject([("name", .string($0))])) })),
        ]))
        do {
            let patched = try await client.mergePatch(ServiceAccount.self, namespace: namespace, name: name, patch)
            serviceAccounts[key] = patched
            patchedServiceAccounts.append(patched)
        } catch {
            throw Self.failure("patch", "serviceaccount \(key)", error)
        }
    }
}

extension KubeClient {
    /// Reads the cluster state the planner needs for `policy`, without listing every Secret or ConfigMap of the
    /// cluster: all Namespaces (name, labels, terminating); each rule's sources (get by name, or list of the source
    /// namespace by label selector); the replicas of each kind the policy replicates (list with
    /// `dynsecret.io/replica=true`; for a kind some rule takes requests for, every object of the kind, keeping replicas
    /// and objects carrying `dynsecret.io/replicate-from`); the targeted ServiceAccounts (list by `metadata.name` field selector, one per
    /// name the policy uses); and, for each target where no replica exists yet, a get of the exact target name so a
    /// foreign same-name object is seen. At most `concurrency` of those gets run at once.
    ///
    /// `minted` are the sources of rules with `source.credentials`, minted by the caller.
    ///
    /// For a member cluster (`scope`), `sources` are the hub's (read there with `replicationSources`), and nothing
    /// is read from the member's source namespaces.
    ///
    /// With `onlyNamespaces` (a namespaced member), nothing is read cluster-wide: those namespaces are taken as they
    /// are (`ReplicationNamespace.assumed`) and replicas and ServiceAccounts are listed in each.
    public func replicationState(for policy: ReplicationPolicy, scope: ReplicationScope = .local, sources: [SourceObject]? = nil,
                                 onlyNamespaces: [String] = [], minted: [SourceObject] = [], concurrency: Int = 8) async throws(KubeError) -> ReplicationState {
        var state = ReplicationState()
        if let sources { state.sources = sources }
        state.sources += minted
        let scoped: [String?] = onlyNamespaces.isEmpty ? [nil] : onlyNamespaces
        if onlyNamespaces.isEmpty {
            state.namespaces = try await listAll(.namespaces).items.compactMap { ReplicationNamespace(apiObject: $0) }
        } else {
            state.namespaces = onlyNamespaces.map(ReplicationNamespace.assumed)
        }
        var seen: Set<ReplicaRef> = []
        func add(_ o: ReplicaObject) {
            guard seen.insert(ReplicaRef(o.kind, o.namespace, o.name)).inserted else { return }
            switch o {
            case .secret(let s): state.secrets.append(s)
            case .configMap(let c): state.configMaps.append(c)
            }
        }
        for rule in policy.rules where sources == nil {
            let kind = rule.source.kind
            if let name = rule.source.name {
                do {
                    add(try await replicaObject(kind, namespace: rule.source.namespace, name: name))
                } catch where error.httpStatus == 404 {
                    // a missing source: the planner reports it (or prunes by onSourceDelete)
                }
            } else if let selector = rule.source.selector {
                let opts = ListOptions(labelSelector: selector.queryString.isEmpty ? nil : selector.queryString)
                for o in try await replicaObjects(kind, namespace: rule.source.namespace, options: opts) { add(o) }
            }
        }
        let requestedKinds = policy.requestedKinds
        for kind in policy.kinds {
            for ns in scoped {
                guard requestedKinds.contains(kind) else {
                    for o in try await replicaObjects(kind, namespace: ns, options: ListOptions(labelSelector: "\(ReplicaMarkers.replicaLabel)=true")) { add(o) }
                    continue
                }
                // Requests carry only an annotation, which no selector can ask for: every object of the kind, page
                // by page, keeping replicas and requests (nothing else is decoded).
                var failure: KubeError?
                _ = try await listEach(.of(kind), namespace: ns) { item in
                    guard failure == nil, ReplicaMarkers.isTargetCandidate(apiObject: item, requests: true) else { return }
                    do throws(KubeError) { add(try ReplicaObject(kind, kubeJSON: item)) } catch { failure = error }
                }
                if let failure { throw failure }
            }
        }
        for n in policy.serviceAccountNames {
            for ns in scoped {
                state.serviceAccounts += try await list(ServiceAccount.self, namespace: ns, options: ListOptions(fieldSelector: "metadata.name=\(n)")).items
            }
        }
        // Targets without a replica: look for a foreign object at the exact name.
        let draft = ReplicationPlanner.plan(policy, state, scope: scope)
        let missing = draft.actions.filter { $0.kind == .create && !seen.contains($0.ref) }.map(\.ref)
        let found = try await boundedMap(missing, width: concurrency) { (target: ReplicaRef) async throws(KubeError) -> ReplicaObject? in
            do throws(KubeError) {
                return try await self.replicaObject(target.kind, namespace: target.namespace, name: target.name)
            } catch where error.httpStatus == 404 {
                return nil
            }
        }
        for case let o? in found { add(o) }
        return state
    }

    /// The sources of `policy` in a hub's state, for member clusters' plans.
    public static func replicationSources(_ policy: ReplicationPolicy, in state: ReplicationState) -> [SourceObject] {
        let whole = state.objects.map { o -> SourceObject in
            switch o {
            case .secret(let s): SourceObject(s)
            case .configMap(let c): SourceObject(c)
            }
        }
        return (whole + state.sources).filter { s in policy.rules.contains { ReplicationPlanner.isSource(s, of: $0) } }
    }

    /// Reads one Secret or ConfigMap.
    public func replicaObject(_ kind: ReplicatedKind, namespace: String, name: String) async throws(KubeError) -> ReplicaObject {
        try ReplicaObject(kind, kubeJSON: try await get(.of(kind), namespace: namespace, name: name))
    }

    /// Lists Secrets or ConfigMaps (every page).
    public func replicaObjects(_ kind: ReplicatedKind, namespace: String?, options: ListOptions = ListOptions()) async throws(KubeError) -> [ReplicaObject] {
        switch kind {
        case .secret: try await list(Secret.self, namespace: namespace, options: options).items.map(ReplicaObject.secret)
        case .configMap: try await list(ConfigMap.self, namespace: namespace, options: options).items.map(ReplicaObject.configMap)
        }
    }
}

/// Plan application against the cluster with bounded concurrency.
public enum KubeReplicationApplier {
    /// Applies `plan`'s writes through `writer`: each namespace's writes in plan order (so a replacement's delete
    /// precedes its create), at most `concurrency` namespaces at once. A failure never stops the other targets.
    /// `onWrites` is called with the number of writes of each namespace once they are done (for progress).
    public static func apply(_ plan: ReplicationPlan, writer: KubeReplicationWriter, concurrency: Int = 8,
                             onWrites: (@Sendable (Int) -> Void)? = nil) async -> ReplicationApplyResult {
        var groups: [[ReplicationAction]] = []
        var index: [String: Int] = [:]
        for a in plan.actions where a.isWrite {
            if let i = index[a.namespace] {
                groups[i].append(a)
            } else {
                index[a.namespace] = groups.count
                groups.append([a])
            }
        }
        let results = (try? await boundedMap(groups, width: concurrency) { (actions: [ReplicationAction]) async throws(KubeError) -> ReplicationApplyResult in
            var w = writer
            let part = ReplicationPlan(policy: plan.policy, actions: actions, replicas: [], serviceAccounts: [])
            let result = await ReplicationApplier.apply(part, to: &w)
            onWrites?(actions.count)
            return result
        }) ?? []
        var total = ReplicationApplyResult()
        for r in results {
            total.applied += r.applied
            total.skipped += r.skipped
            total.failures += r.failures
        }
        return total
    }
}

/// Maps `items` with at most `width` calls of `body` running at once; results in input order.
func boundedMap<T: Sendable, R: Sendable>(_ items: [T], width: Int, _ body: @escaping @Sendable (T) async throws(KubeError) -> R) async throws(KubeError) -> [R] {
    let width = max(1, width)
    let outcome: Result<[R], KubeError> = await withTaskGroup(of: (Int, Result<R, KubeError>).self) { group in
        var results = [R?](repeating: nil, count: items.count)
        var firstError: KubeError?
        var next = 0
        func start() {
            let i = next
            let item = items[i]
            next += 1
            group.addTask {
                do throws(KubeError) { return (i, .success(try await body(item))) } catch { return (i, .failure(error)) }
            }
        }
        while next < min(width, items.count) { start() }
        while let done = await group.next() {
            let (i, r) = done
            switch r {
            case .success(let v): results[i] = v
            case .failure(let e): if firstError == nil { firstError = e }
            }
            if next < items.count && firstError == nil { start() }
        }
        if let firstError { return .failure(firstError) }
        return .success(results.map { $0! })
    }
    return try outcome.get()
}
