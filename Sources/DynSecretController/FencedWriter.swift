internal import DynSecretCore
internal import DynSecretKube

/// Passes writes to the cluster writer only while this process may write (checked before every write, so a
/// reconcile that started before leadership was lost stops at its next write), and remembers each write's outcome.
struct FencedWriter: ReplicationWriter {
    static let notLeader = -1
    var inner: KubeReplicationWriter
    let canWrite: @Sendable () -> Bool
    /// Called after each write that succeeded, with its verb, object kind and the writer holding its result (last in
    /// its list).
    var afterWrite: @Sendable (ReplicationAction.Kind, ReplicatedKind, KubeReplicationWriter) -> Void = { _, _, _ in }
    var errors: [String: ReplicationWriteError] = [:]
    /// The `key` of each write that succeeded.
    var done: Set<String> = []

    static func key(_ a: ReplicationAction) -> String { key(a.kind, a.objectKind, a.namespace, a.name) }
    static func key(_ kind: ReplicationAction.Kind, _ objectKind: ReplicatedKind, _ ns: String, _ name: String) -> String {
        "\(kind.rawValue)/\(objectKind.rawValue)/\(ns)/\(name)"
    }

    private mutating func run(_ kind: ReplicationAction.Kind, _ objectKind: ReplicatedKind, _ ns: String, _ name: String,
                              _ body: (inout KubeReplicationWriter) async throws(ReplicationWriteError) -> Void) async throws(ReplicationWriteError) {
        let key = Self.key(kind, objectKind, ns, name)
        guard canWrite() else {
            let e = ReplicationWriteError("\(kind.rawValue) \(ns)/\(name): skipped, this process is no longer the leader", code: Self.notLeader)
            errors[key] = e
            throw e
        }
        do {
            try await body(&inner)
            done.insert(key)
            afterWrite(kind, objectKind, inner)
        } catch {
            errors[key] = error
            throw error
        }
    }

    mutating func create(_ object: ReplicaObject) async throws(ReplicationWriteError) {
        try await run(.create, object.kind, object.namespace, object.name) { (w) throws(ReplicationWriteError) in try await w.create(object) }
    }

    mutating func update(_ object: ReplicaObject, previous: TargetObject?, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        try await run(.update, object.kind, object.namespace, object.name) { (w) throws(ReplicationWriteError) in
            try await w.update(object, previous: previous, precondition: precondition)
        }
    }

    mutating func delete(_ kind: ReplicatedKind, namespace: String, name: String, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        try await run(.delete, kind, namespace, name) { (w) throws(ReplicationWriteError) in try await w.delete(kind, namespace: namespace, name: name, precondition: precondition) }
    }

    mutating func patchServiceAccount(namespace: String, name: String, addImagePullSecrets: [String], precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        try await run(.patchServiceAccount, .secret, namespace, name) { (w) throws(ReplicationWriteError) in
            try await w.patchServiceAccount(namespace: namespace, name: name, addImagePullSecrets: addImagePullSecrets, precondition: precondition)
        }
    }
}
