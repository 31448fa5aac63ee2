public import DynSecretCore

/// `ReplicationWriter` over the Kubernetes API.
///
/// Creates POST the replica. An update with the object it was planned from (`previous`) is a JSON merge patch of only
/// what changes (labels and annotations set or removed, the whole `data` when the content differs, with removed keys
/// as null, `immutable`) guarded by `metadata.resourceVersion`, so fields the replica gained elsewhere (owner
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
    /// Namespace, name, uid and `resourceVersion` of each Secret as the API server returned it from a create or update
    /// (a controller records the version to recognise the watch events of its own writes). The answers' data is
    /// neither decoded nor kept.
    public private(set) var writtenSecrets: [ObjectMeta] = []
    /// Each Secret deleted: namespace, name, and the `resourceVersion` it was deleted at (the precondition's).
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

    public mutating func create(_ secret: Secret) async throws(ReplicationWriteError) {
        var s = secret
        s.metadata.uid = nil
        s.metadata.resourceVersion = nil
        do {
            writtenSecrets.append(Self.identity(try await client.create(.secrets, namespace: s.metadata.namespace, s.kubeJSON)))
        } catch {
            throw Self.failure("create", "secret \(Self.key(s.metadata))", error)
        }
    }

    public mutating func update(_ secret: Secret, previous: TargetObject?, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        var s = secret
        s.metadata.resourceVersion = precondition.resourceVersion
        if let uid = precondition.uid { s.metadata.uid = uid }
        do {
            if let previous, let rv = precondition.resourceVersion {
                let patch = Self.updatePatch(s, from: previous, resourceVersion: rv)
                writtenSecrets.append(Self.identity(try await client.mergePatch(.secrets, namespace: previous.namespace, name: previous.name, patch)))
            } else {
                writtenSecrets.append(Self.identity(try await client.update(.secrets, namespace: s.metadata.namespace, s.kubeJSON)))
            }
        } catch {
            throw Self.failure("update", "secret \(Self.key(s.metadata))", error)
        }
    }

    /// The JSON merge patch (RFC 7386) taking `previous` to `secret`'s labels, annotations, data and immutability.
    static func updatePatch(_ secret: Secret, from previous: TargetObject, resourceVersion: String) -> JSONValue {
        func mapPatch(_ new: [String: String], _ old: [String: String]) -> JSONValue? {
            var members: [(String, JSONValue)] = []
            for (k, v) in new where old[k] != v { members.append((k, .string(v))) }
            for k in old.keys where new[k] == nil { members.append((k, .null)) }
            guard !members.isEmpty else { return nil }
            return .object(JSONObject(members.sorted { utf8Less($0.0, $1.0) }))
        }
        var meta: [(String, JSONValue)] = [("resourceVersion", .string(resourceVersion))]
        if let l = mapPatch(secret.metadata.labels, previous.labels) { meta.append(("labels", l)) }
        if let a = mapPatch(secret.metadata.annotations, previous.annotations) { meta.append(("annotations", a)) }
        var o: [(String, JSONValue)] = [("metadata", .object(JSONObject(meta)))]
        let data = secret.mergedData
        if ReplicaContentHash.of(type: previous.type, data: data) != previous.contentHash || previous.hasStringData {
            var members = data.keys.sorted(by: utf8Less).map { ($0, JSONValue.string(Base64.encode(data[$0]!))) }
            members += previous.dataKeys.filter { data[$0] == nil }.map { ($0, JSONValue.null) }
            o.append(("data", .object(JSONObject(members))))
        }
        if (secret.immutable ?? false) != (previous.immutable ?? false) { o.append(("immutable", secret.immutable.map(JSONValue.bool) ?? .null)) }
        return .object(JSONObject(o))
    }

    public mutating func delete(namespace: String, name: String, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        do {
            try await client.delete(Secret.self, namespace: namespace, name: name,
                                    preconditions: DeletePreconditions(uid: precondition.uid, resourceVersion: precondition.resourceVersion))
            var deleted = ObjectMeta(name: name, namespace: namespace)
            deleted.resourceVersion = precondition.resourceVersion
            deletedSecrets.append(deleted)
        } catch {
            throw Self.failure("delete", "secret \(namespace)/\(name)", error)
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
    /// Reads the cluster state the planner needs for `policy`, without listing every Secret of the cluster:
    /// all Namespaces (name, labels, terminating); each rule's source Secrets (get by name, or list of the source
    /// namespace by label selector); the replicas (list with `dynsecret.io/replica=true`); the targeted
    /// ServiceAccounts (list by `metadata.name` field selector, one per name the policy uses); and, for each target
    /// where no replica exists yet, a get of the exact target name so a foreign same-name Secret is seen.
    /// At most `concurrency` of those gets run at once.
    public func replicationState(for policy: ReplicationPolicy, concurrency: Int = 8) async throws(KubeError) -> ReplicationState {
        var state = ReplicationState()
        state.namespaces = try await listAll(.namespaces).items.compactMap { ReplicationNamespace(apiObject: $0) }
        var seen: Set<String> = []
        func add(_ s: Secret) {
            if seen.insert(KubeReplicationWriter.key(s.metadata)).inserted { state.secrets.append(s) }
        }
        for rule in policy.rules {
            if let name = rule.source.name {
                do {
                    add(try await get(Secret.self, namespace: rule.source.namespace, name: name))
                } catch where error.httpStatus == 404 {
                    // a missing source: the planner reports it (or prunes by onSourceDelete)
                }
            } else if let selector = rule.source.selector {
                let opts = ListOptions(labelSelector: selector.queryString.isEmpty ? nil : selector.queryString)
                for s in try await list(Secret.self, namespace: rule.source.namespace, options: opts).items { add(s) }
            }
        }
        for s in try await list(Secret.self, namespace: nil, options: ListOptions(labelSelector: "\(ReplicaMarkers.replicaLabel)=true")).items { add(s) }
        for n in policy.serviceAccountNames {
            state.serviceAccounts += try await list(ServiceAccount.self, namespace: nil, options: ListOptions(fieldSelector: "metadata.name=\(n)")).items
        }
        // Targets without a replica: look for a foreign Secret at the exact name.
        let draft = ReplicationPlanner.plan(policy, state)
        let missing = draft.actions.filter { $0.kind == .create && !seen.contains($0.namespace + "/" + $0.name) }
            .map { ($0.namespace, $0.name) }
        let found = try await boundedMap(missing, width: concurrency) { (target: (String, String)) async throws(KubeError) -> Secret? in
            do throws(KubeError) {
                return try await self.get(Secret.self, namespace: target.0, name: target.1)
            } catch where error.httpStatus == 404 {
                return nil
            }
        }
        for case let s? in found { add(s) }
        return state
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
