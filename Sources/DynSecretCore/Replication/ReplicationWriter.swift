/// A write that failed, with a one-line reason (never a secret value).
public struct ReplicationWriteError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// The API server's HTTP status (0 when there was no answer or no server).
    public var code: Int
    /// The API server's `Status.reason` (such as `Conflict`), empty when unknown.
    public var reason: String
    public init(_ message: String, code: Int = 0, reason: String = "") {
        self.message = message
        self.code = code
        self.reason = reason
    }
    public var description: String { message }
}

/// Where a plan's writes go: the cluster (added with the Kubernetes client), an in-memory model, a manifest directory.
///
/// Updates, deletes and patches must honour the precondition (uid and resourceVersion) and fail when it does not hold.
/// An update sets the labels, annotations, type, data and immutability of `object` and keeps the stored object's
/// other fields; `previous` is the object the plan was made from, when the plan had it.
public protocol ReplicationWriter {
    mutating func create(_ object: ReplicaObject) async throws(ReplicationWriteError)
    mutating func update(_ object: ReplicaObject, previous: TargetObject?, precondition: ReplicationPrecondition) async throws(ReplicationWriteError)
    mutating func delete(_ kind: ReplicatedKind, namespace: String, name: String, precondition: ReplicationPrecondition) async throws(ReplicationWriteError)
    mutating func patchServiceAccount(namespace: String, name: String, addImagePullSecrets: [String], precondition: ReplicationPrecondition) async throws(ReplicationWriteError)
}

/// The outcome of applying a plan.
public struct ReplicationApplyResult: Sendable, Equatable {
    /// Writes that succeeded.
    public var applied: Int = 0
    /// Failed writes, with the action and the reason; the other targets were still written.
    public var failures: [(action: ReplicationAction, message: String)] = []
    /// Writes not attempted because an earlier step for the same object failed (the create after a failed delete).
    public var skipped: Int = 0

    /// Nothing applied yet.
    public init() {}

    public static func == (a: Self, b: Self) -> Bool {
        a.applied == b.applied && a.skipped == b.skipped && a.failures.map(\.action) == b.failures.map(\.action) && a.failures.map(\.message) == b.failures.map(\.message)
    }
}

public enum ReplicationApplier {
    /// Applies the writes of `plan` in order; a failure in one target never stops the others.
    ///
    /// - An update or delete is never sent without both a uid and a resourceVersion precondition: it fails with
    ///   "refused: … without uid and resourceVersion precondition" (a plan built from manifests that lack them).
    /// - The create of a replacement is skipped when its delete failed; when the delete succeeded and the create
    ///   fails, the create is retried once, then reported as "replica missing after replace".
    /// - A ServiceAccount patch never adds the name of a Secret whose write failed in this apply (the patch is
    ///   skipped when no name is left).
    public static func apply<W: ReplicationWriter>(_ plan: ReplicationPlan, to writer: inout W) async -> ReplicationApplyResult {
        var result = ReplicationApplyResult()
        var failedKeys: Set<String> = []
        var failedSecrets: Set<String> = []
        var deleted: Set<String> = []
        for var a in plan.actions where a.isWrite {
            let key = "\(a.kind == .patchServiceAccount ? "sa" : a.objectKind.rawValue)/\(a.namespace)/\(a.name)"
            if failedKeys.contains(key) {
                result.skipped += 1
                continue
            }
            if a.kind == .patchServiceAccount {
                a.addImagePullSecrets = a.addImagePullSecrets.filter { !failedSecrets.contains(a.namespace + "/" + $0) }
                if a.addImagePullSecrets.isEmpty {
                    result.skipped += 1
                    continue
                }
            }
            let pre = a.precondition ?? ReplicationPrecondition(uid: nil, resourceVersion: nil)
            if (a.kind == .update || a.kind == .delete) && !pre.isComplete {
                result.failures.append((a, "refused: \(a.kind.rawValue) of \(a.objectKind.plural) \"\(a.name)\" without uid and resourceVersion precondition"))
                failedKeys.insert(key)
                if a.objectKind == .secret { failedSecrets.insert(a.namespace + "/" + a.name) }
                continue
            }
            do throws(ReplicationWriteError) {
                switch a.kind {
                case .create:
                    do throws(ReplicationWriteError) {
                        try await writer.create(a.object!)
                    } catch where deleted.contains(key) {
                        // The old object is gone: one retry, then a distinct failure.
                        do throws(ReplicationWriteError) {
                            try await writer.create(a.object!)
                        } catch {
                            throw ReplicationWriteError("replica missing after replace: \(error.message)")
                        }
                    }
                case .update: try await writer.update(a.object!, previous: a.previous, precondition: pre)
                case .delete:
                    try await writer.delete(a.objectKind, namespace: a.namespace, name: a.name, precondition: pre)
                    deleted.insert(key)
                case .patchServiceAccount: try await writer.patchServiceAccount(namespace: a.namespace, name: a.name, addImagePullSecrets: a.addImagePullSecrets, precondition: pre)
                case .report: continue
                }
                result.applied += 1
            } catch {
                result.failures.append((a, error.message))
                failedKeys.insert(key)
                if a.kind != .patchServiceAccount && a.objectKind == .secret { failedSecrets.insert(a.namespace + "/" + a.name) }
            }
        }
        return result
    }
}

/// An in-memory cluster with the API server's rules for the writes the planner makes: uids and resourceVersions,
/// AlreadyExists / NotFound / Conflict on stale preconditions, immutable `type`, immutable `data` when `immutable: true`.
public struct InMemoryReplicationCluster: ReplicationWriter, Sendable {
    public var state: ReplicationState
    private var nextVersion: Int
    /// Writes by verb, as the emulator counts them.
    public private(set) var writeCounts: [String: Int] = [:]

    public init(_ state: ReplicationState) {
        self.state = state
        nextVersion = 1000
    }

    private func index(_ kind: ReplicatedKind, _ ns: String, _ name: String) -> Int? {
        switch kind {
        case .secret: state.secrets.firstIndex { ($0.metadata.namespace ?? "default") == ns && $0.metadata.name == name }
        case .configMap: state.configMaps.firstIndex { ($0.metadata.namespace ?? "default") == ns && $0.metadata.name == name }
        }
    }

    private mutating func stamp(_ meta: inout ObjectMeta) {
        nextVersion += 1
        meta.resourceVersion = String(nextVersion)
    }

    private func check(_ meta: ObjectMeta, _ pre: ReplicationPrecondition, _ what: String) throws(ReplicationWriteError) {
        if let uid = pre.uid, meta.uid != uid { throw ReplicationWriteError("\(what): Precondition failed: UID in precondition: \(uid), UID in object meta: \(meta.uid ?? "")") }
        if let rv = pre.resourceVersion, meta.resourceVersion != rv {
            throw ReplicationWriteError("\(what): Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again")
        }
    }

    public mutating func create(_ object: ReplicaObject) async throws(ReplicationWriteError) {
        let ns = object.namespace, name = object.name
        let what = "\(object.kind.plural) \"\(name)\""
        guard state.namespaces.contains(where: { $0.name == ns && !$0.terminating }) else {
            throw ReplicationWriteError("\(what) is forbidden: unable to create new content in namespace \(ns)")
        }
        if index(object.kind, ns, name) != nil { throw ReplicationWriteError("\(what) already exists") }
        var meta = object.metadata
        nextVersion += 1
        meta.uid = "uid-\(nextVersion)"
        stamp(&meta)
        switch object {
        case .secret(var s):
            s.data = s.mergedData
            s.stringData = [:]
            if s.type.isEmpty { s.type = SecretType.opaque }
            s.metadata = meta
            state.secrets.append(s)
        case .configMap(var c):
            c.metadata = meta
            state.configMaps.append(c)
        }
        writeCounts["create", default: 0] += 1
    }

    public mutating func update(_ object: ReplicaObject, previous: TargetObject?, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        let ns = object.namespace, name = object.name
        let what = "\(object.kind.plural) \"\(name)\""
        guard let i = index(object.kind, ns, name) else { throw ReplicationWriteError("\(what) not found") }
        // The fields an update sets; everything else stays as stored. A compact target keeps
        // last-applied-configuration's key, not its value: the value stays as stored.
        func meta(_ old: ObjectMeta) -> ObjectMeta {
            var m = old
            m.labels = object.metadata.labels
            m.annotations = object.metadata.annotations
            if object.metadata.annotations[ReplicaMarkers.lastApplied] == "", let v = old.annotations[ReplicaMarkers.lastApplied] {
                m.annotations[ReplicaMarkers.lastApplied] = v
            }
            return m
        }
        switch object {
        case .secret(let secret):
            let old = state.secrets[i]
            try check(old.metadata, precondition, what)
            var s = old
            s.metadata = meta(old.metadata)
            s.type = secret.type.isEmpty ? SecretType.opaque : secret.type
            s.data = secret.mergedData
            s.stringData = [:]
            s.immutable = secret.immutable
            if s.effectiveType != old.effectiveType { throw ReplicationWriteError("Secret \"\(name)\" is invalid: type: Invalid value: field is immutable") }
            if old.immutable == true && (s.data != old.mergedData || s.immutable != true) {
                throw ReplicationWriteError("Secret \"\(name)\" is invalid: data: Forbidden: field is immutable when `immutable` is set")
            }
            stamp(&s.metadata)
            state.secrets[i] = s
        case .configMap(let configMap):
            let old = state.configMaps[i]
            try check(old.metadata, precondition, what)
            var c = configMap
            c.metadata = meta(old.metadata)
            if let v = ConfigMapAPIRules.violations(c, old: old).first {
                throw ReplicationWriteError("ConfigMap \"\(name)\" is invalid: \(v.text)")
            }
            stamp(&c.metadata)
            state.configMaps[i] = c
        }
        writeCounts["update", default: 0] += 1
    }

    public mutating func delete(_ kind: ReplicatedKind, namespace: String, name: String, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        let what = "\(kind.plural) \"\(name)\""
        guard let i = index(kind, namespace, name) else { throw ReplicationWriteError("\(what) not found") }
        switch kind {
        case .secret:
            try check(state.secrets[i].metadata, precondition, what)
            state.secrets.remove(at: i)
        case .configMap:
            try check(state.configMaps[i].metadata, precondition, what)
            state.configMaps.remove(at: i)
        }
        writeCounts["delete", default: 0] += 1
    }

    public mutating func patchServiceAccount(namespace: String, name: String, addImagePullSecrets: [String], precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        guard let i = state.serviceAccounts.firstIndex(where: { ($0.metadata.namespace ?? "default") == namespace && $0.metadata.name == name }) else {
            throw ReplicationWriteError("serviceaccounts \"\(name)\" not found")
        }
        try check(state.serviceAccounts[i].metadata, precondition, "serviceaccounts \"\(name)\"")
        var sa = state.serviceAccounts[i]
        sa.imagePullSecrets = ServiceAccountPatch.apply(addImagePullSecrets, to: sa.imagePullSecrets)
        stamp(&sa.metadata)
        state.serviceAccounts[i] = sa
        writeCounts["patch", default: 0] += 1
    }
}
