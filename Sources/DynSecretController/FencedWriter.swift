internal import DynSecretCore
internal import DynSecretKube

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

    mutating func update(_ secret: Secret, previous: TargetObject?, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
        try await run(.update, secret.metadata.namespace ?? "", secret.metadata.name ?? "") { (w) throws(ReplicationWriteError) in
            try await w.update(secret, previous: previous, precondition: precondition)
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
