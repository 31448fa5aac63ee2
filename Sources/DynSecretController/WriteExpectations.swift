internal import DynSecretCore
internal import Synchronization

/// This process's writes not yet seen in the caches, by work key (client-go's "expectations"). A reconcile of a key
/// waits for them (polling briefly, at most `timeout`) instead of planning from a cache its watch has not updated
/// yet, which would repeat a write and meet a 409 Conflict. The watch event of an own write is recognised by its
/// resourceVersion, and needs no reconcile of its own.
final class WriteExpectations: Sendable {
    enum Kind: Sendable, Equatable { case replica(ReplicatedKind), serviceAccount }

    struct Expectation: Sendable {
        var kind: Kind
        var name: String
        var resourceVersion: String?
        var deleted: Bool
        var deadline: ContinuousClock.Instant
    }

    static let timeout = Duration.seconds(2)
    private let pending = Mutex<[ReplicationKey: [Expectation]]>([:])

    /// Records a write that succeeded: `name` of `kind` at `resourceVersion` (the precondition's version for a delete).
    func expect(_ kind: Kind, _ name: String, resourceVersion: String?, deleted: Bool, in key: ReplicationKey) {
        let x = Expectation(kind: kind, name: name, resourceVersion: resourceVersion, deleted: deleted, deadline: .now + Self.timeout)
        pending.withLock { $0[key, default: []].append(x) }
    }

    /// An event for one object ends the waits it answers: an event at the written version or later (a deletion
    /// carries the version it was deleted at, so the deletion of an older object does not answer a new create).
    /// Returns whether the event is this process's own create, update or patch (same `resourceVersion`).
    @discardableResult
    func settle(_ key: ReplicationKey, _ kind: Kind, _ name: String, _ resourceVersion: String?, deleted: Bool) -> Bool {
        pending.withLock { e in
            guard let list = e[key], let resourceVersion else { return false }
            var own = false
            let rest = list.filter { x in
                guard x.kind == kind, x.name == name else { return true }
                if resourceVersion == x.resourceVersion {
                    own = own || (!deleted && !x.deleted)
                    return false
                }
                return !Self.newer(resourceVersion, than: x.resourceVersion)
            }
            e[key] = rest.isEmpty ? nil : rest
            return own
        }
    }

    /// Whether a write in `key` is not yet seen (by `observed`) and not past its deadline; also returns how many
    /// expired unseen (they are dropped, and the reconcile plans without them).
    func awaiting(_ key: ReplicationKey, observed: (Expectation) -> Bool) -> (waiting: Bool, expired: Int) {
        let now = ContinuousClock.now
        return pending.withLock { e -> (Bool, Int) in
            guard let list = e[key] else { return (false, 0) }
            let unseen = list.filter { !observed($0) }
            let waiting = unseen.filter { $0.deadline > now }
            e[key] = waiting.isEmpty ? nil : waiting
            return (!waiting.isEmpty, unseen.count - waiting.count)
        }
    }

    /// Whether the cache shows `x`, given the cached object's resourceVersion (nil: not cached).
    static func observed(_ x: Expectation, cachedVersion: String??) -> Bool {
        guard case .some(let cached) = cachedVersion else {
            // Gone: a deletion was seen; a ServiceAccount deleted since its patch needs nothing more. A written
            // replica deleted since has usually ended the wait already (`settle`); if its deletion was seen before
            // the write was recorded, the wait ends at the deadline.
            return x.deleted || x.kind == .serviceAccount
        }
        if x.deleted { return newer(cached, than: x.resourceVersion) }
        return cached == x.resourceVersion || newer(cached, than: x.resourceVersion)
    }

    /// Whether resourceVersion `a` is later than `b`. They are opaque to clients, but the API server's (etcd
    /// revisions) are integers; anything else compares as not newer, and the wait ends at the deadline.
    static func newer(_ a: String?, than b: String?) -> Bool {
        guard let a = a.flatMap({ UInt64($0) }), let b = b.flatMap({ UInt64($0) }) else { return false }
        return a > b
    }
}
