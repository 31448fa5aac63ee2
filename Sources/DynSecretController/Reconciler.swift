internal import DynSecretCore
internal import DynSecretKube
internal import Foundation
internal import Logging
internal import Synchronization

/// Reconciles one work key (a target namespace of one cluster): reads the cluster cache, plans with the replication
/// planner, applies the writes through the fenced writer, records each write as an expectation, and reports failures
/// and conflicts as logs, Events and metrics. Level-based and idempotent: planning again after the writes are seen
/// yields no write.
///
/// Foreign Secrets are not watched, so a create may meet one: a create never overwrites (the API server answers 409
/// AlreadyExists), the name is remembered for its key, and the key is reconciled again at once; from then on that
/// name is read before planning, so the foreign Secret is reported (or adopted, as the rule says) instead of written
/// over. (Reading every create's name first would double the requests of every new namespace.)
struct Reconciler: Sendable {
    let policy: ReplicationPolicy
    /// The cluster planned, and the hub planning it.
    let scope: ReplicationScope
    /// A member's sources: the hub's (nil in the hub, whose cache holds them).
    let hubSources: (@Sendable () -> [SourceObject])?
    /// Minted sources added to the hub's (members get them with `hubSources`).
    let mintedSources: @Sendable () -> [SourceObject]
    /// Records Events in this cluster (on objects there: a refused request); `events` records them in the hub, on
    /// the sources.
    let clusterEvents: EventRecorder
    /// Each rule's listed target namespaces (`targets.namespaces`), as sets for `plan`.
    let listedTargets: [Set<String>]
    let client: KubeClient
    let cache: ClusterCache
    let expectations: WriteExpectations
    let metrics: ControllerMetrics
    let events: EventRecorder
    let logger: Logger
    let canWrite: @Sendable () -> Bool
    /// The uid of the source (kind, `namespace/name`) an action's Event is attached to (sources live in the hub).
    let sourceUID: @Sendable (ReplicatedKind, String) -> String?
    /// Names at which a create met an object the cache does not hold, by key: read before each plan.
    let unwatched = UnwatchedNames()

    init(policy: ReplicationPolicy, scope: ReplicationScope, hubSources: (@Sendable () -> [SourceObject])?,
         mintedSources: @escaping @Sendable () -> [SourceObject] = { [] }, client: KubeClient, cache: ClusterCache,
         expectations: WriteExpectations, metrics: ControllerMetrics, events: EventRecorder, clusterEvents: EventRecorder, logger: Logger,
         canWrite: @escaping @Sendable () -> Bool, sourceUID: @escaping @Sendable (ReplicatedKind, String) -> String?) {
        self.policy = policy
        self.scope = scope
        self.hubSources = hubSources
        self.mintedSources = mintedSources
        self.clusterEvents = clusterEvents
        listedTargets = policy.rules.map { Set($0.targets.namespaces) }
        self.client = client
        self.cache = cache
        self.expectations = expectations
        self.metrics = metrics
        self.events = events
        self.logger = logger
        self.canWrite = canWrite
        self.sourceUID = sourceUID
    }

    /// Whether a write of this process in `key` is not yet in the cache (and not past its deadline).
    func awaitsOwnWrites(_ key: ReplicationKey) -> Bool {
        let (waiting, expired) = expectations.awaiting(key) { x in
            switch x.kind {
            case .replica(let kind): WriteExpectations.observed(x, cachedVersion: cache.replica(kind, key.namespace, x.name).map { $0.resourceVersion })
            case .serviceAccount: WriteExpectations.observed(x, cachedVersion: cache.serviceAccountVersion(key.namespace, x.name))
            }
        }
        if expired > 0 {
            logger.debug("own writes not seen in the caches in time; planning without them", metadata: ["namespace": "\(key)", "writes": "\(expired)"])
        }
        return waiting
    }

    /// The outcome of one reconcile.
    enum Outcome: Equatable {
        case done
        /// A write failed: retry with backoff.
        case failed
        /// A create met an object not in the cache: reconcile again now (reading that name first).
        case again
    }

    /// Plans and applies `key`.
    func reconcile(_ key: ReplicationKey) async -> Outcome {
        let ns = key.namespace
        guard var state = cache.state(of: ns) else {
            metrics.setReplicaStates(key, nil)
            return .done
        }
        if let hubSources { state.sources = hubSources() } else { state.sources += mintedSources() }
        let cached = Set(state.targets.map(\.ref))
        var plan = self.plan(ns, state)
        // Names where a create met an object before: read them, and plan again with what is there.
        var found = false
        for a in plan.actions where a.kind == .create && !cached.contains(a.ref) && unwatched.contains(a.ref, in: key) {
            do {
                switch try await client.replicaObject(a.objectKind, namespace: ns, name: a.name) {
                case .secret(let s): state.targets.append(TargetObject(s))
                case .configMap(let c): state.targets.append(TargetObject(c))
                }
                found = true
            } catch where error.httpStatus == 404 {
                unwatched.remove(a.ref, in: key)
            } catch {
                logger.warning("reading a target failed", metadata: ["namespace": "\(key)", "object": "\(a.ref)", "error": "\(error.message)"])
                return .failed
            }
        }
        if found { plan = self.plan(ns, state) }
        var writer = FencedWriter(inner: KubeReplicationWriter(client: client, serviceAccounts: state.serviceAccounts), canWrite: canWrite)
        // Each write is recorded as soon as it returns, so its watch event (which can arrive at the same moment) is
        // recognised, and the next reconcile of `key` waits for it.
        writer.afterWrite = { [expectations] kind, objectKind, w in Self.expect(kind, objectKind, w, in: key, expectations) }
        var result = await ReplicationApplier.apply(plan, to: &writer)
        // A create that met an existing object wrote nothing: not a failure, but a reason to look at that name.
        let exists = result.failures.filter { f in
            f.action.kind == .create && writer.errors[FencedWriter.key(f.action)].map { $0.code == 409 && $0.reason == "AlreadyExists" } == true
        }
        for f in exists {
            unwatched.insert(f.action.ref, in: key)
            logger.debug("a create met an object the cache does not hold; reading it and planning again", metadata: ["namespace": "\(key)", "object": "\(f.action.ref)"])
        }
        result.failures.removeAll { f in exists.contains { $0.action == f.action } }
        await report(key, plan, result, writer, pending: Set(exists.map(\.action.ref)))
        if !result.failures.isEmpty { return .failed }
        metrics.synced(cluster: key.cluster, at: Date().timeIntervalSince1970)
        return exists.isEmpty ? .done : .again
    }

    private func report(_ key: ReplicationKey, _ plan: ReplicationPlan, _ result: ReplicationApplyResult, _ writer: FencedWriter,
                        pending: Set<ReplicaRef>) async {
        let ns = key.namespace
        for a in plan.actions where writer.done.contains(FencedWriter.key(a)) { metrics.wrote(a.kind, count: 1) }
        var failedSecrets = 0
        var notices: [(EventRecorder.Object?, String, String, EventRecorder)] = []
        // Events on the sources live in the hub: they name the cluster when it is a member.
        let at = scope.isHub ? "" : "cluster \(key.cluster): "
        for f in result.failures {
            let status = writer.errors[FencedWriter.key(f.action)] ?? ReplicationWriteError(f.message)
            if f.action.kind != .patchServiceAccount { failedSecrets += 1 }
            // The API server's code and reason only, never its message: an admission webhook's free-form denial text
            // could quote the object's data. Failures with no HTTP status (transport, leadership, a refused action)
            // carry this process's own message.
            let http = "HTTP \(status.code)\(status.reason.isEmpty ? "" : " " + status.reason)"
            logger.warning("write failed", metadata: ["namespace": "\(key)", "action": "\(f.action.kind.rawValue)", "kind": "\(f.action.objectKind.rawValue)", "name": "\(f.action.name)",
                                                      "code": "\(status.code)", "error": "\(status.code > 0 ? http : String(f.message.prefix(512)))"])
            if !Self.isStale(status) {
                let why = status.code == 0 ? "no answer from the API server" : http
                let what = f.action.kind == .patchServiceAccount ? "" : f.action.objectKind.rawValue.lowercased() + " "
                let (object, recorder) = eventTarget(for: f.action, in: ns)
                notices.append((object, "ReplicationFailed", "\(at)\(f.action.kind.rawValue) \(what)\(ns)/\(f.action.name) failed: \(why)", recorder))
            }
        }
        // Writes the applier skipped (a replacement whose delete failed) are neither failed nor done.
        for a in plan.actions where writer.done.contains(FencedWriter.key(a)) {
            logger.info("replicated", metadata: ["namespace": "\(key)", "action": "\(a.kind.rawValue)", "kind": "\(a.objectKind.rawValue)", "name": "\(a.name)", "reason": "\(a.reason)"])
        }
        var conflicts = 0
        for a in plan.actions where a.kind == .report && a.reason.hasPrefix("conflict") {
            conflicts += 1
            let (object, recorder) = eventTarget(for: a, in: ns)
            notices.append((object, "ReplicaConflict", "\(at)\(ns)/\(a.name): \(a.reason)", recorder))
        }
        // A request that is not served is told to its namespace owner, on the requesting object.
        for a in plan.actions where a.kind == .report && a.refusesRequest {
            let requester = EventRecorder.Object(kind: a.objectKind.rawValue, apiVersion: "v1", namespace: ns, name: a.name,
                                                 uid: cache.replica(a.objectKind, ns, a.name)?.uid)
            notices.append((requester, "RequestRefused", a.reason, clusterEvents))
        }
        let desired = plan.replicas.filter { $0.namespace == ns && !pending.contains(ReplicaRef($0.kind, $0.namespace, $0.name)) }.count
        metrics.setReplicaStates(key, ["in_sync": max(0, desired - failedSecrets), "failed": failedSecrets, "conflict": conflicts])
        // Events, in order after the writes, only while this process may write.
        for (object, reason, message, recorder) in notices where canWrite() {
            if await recorder.record(object, type: "Warning", reason: reason, message: message), reason == "ReplicaConflict" { metrics.conflict() }
        }
    }

    /// Records a write that succeeded (the last of its kind in `w`).
    private static func expect(_ kind: ReplicationAction.Kind, _ objectKind: ReplicatedKind, _ w: KubeReplicationWriter, in key: ReplicationKey,
                               _ expectations: WriteExpectations) {
        switch kind {
        case .create, .update:
            guard let s = w.writtenSecrets.last else { return }
            expectations.expect(.replica(objectKind), s.name ?? "", resourceVersion: s.resourceVersion, deleted: false, in: key)
        case .delete:
            guard let d = w.deletedSecrets.last else { return }
            expectations.expect(.replica(objectKind), d.name ?? "", resourceVersion: d.resourceVersion, deleted: true, in: key)
        case .patchServiceAccount:
            guard let sa = w.patchedServiceAccounts.last else { return }
            expectations.expect(.serviceAccount, sa.metadata.name ?? "", resourceVersion: sa.metadata.resourceVersion, deleted: false, in: key)
        case .report:
            return
        }
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
    func plan(_ ns: String, _ state: ReplicationState) -> ReplicationPlan {
        var scoped = policy
        for i in scoped.rules.indices where !scoped.rules[i].targets.namespaces.isEmpty {
            scoped.rules[i].targets.namespaces = listedTargets[i].contains(ns) ? [ns] : []
        }
        let full = ReplicationPlanner.plan(scoped, state, scope: scope)
        return ReplicationPlan(policy: full.policy, actions: full.actions.filter { $0.namespace == ns },
                               replicas: full.replicas, serviceAccounts: full.serviceAccounts)
    }

    /// The source an action's Event is attached to: the rule's named source, or (selector rules) the source of the
    /// same name.
    /// Where an Event about `action` goes: on the rule's source in the hub; for a minted source (no object in any
    /// cluster) on the replica itself, in the cluster written to.
    private func eventTarget(for action: ReplicationAction, in namespace: String) -> (EventRecorder.Object?, EventRecorder) {
        guard let ruleName = action.rules.first, let rule = policy.rules.first(where: { $0.name == ruleName }) else { return (nil, events) }
        if rule.source.isMinted {
            if action.kind == .patchServiceAccount {
                return (EventRecorder.Object(kind: "ServiceAccount", apiVersion: "v1", namespace: namespace, name: action.name, uid: nil), clusterEvents)
            }
            let kind = action.objectKind
            return (EventRecorder.Object(kind: kind.rawValue, apiVersion: "v1", namespace: namespace, name: action.name,
                                         uid: cache.replica(kind, namespace, action.name)?.uid), clusterEvents)
        }
        let name = rule.source.name ?? action.name
        return (EventRecorder.Object(kind: rule.source.kind.rawValue, apiVersion: "v1", namespace: rule.source.namespace, name: name,
                                     uid: sourceUID(rule.source.kind, rule.source.namespace + "/" + name)), events)
    }
}

/// Objects in a key at which something exists that the cache does not hold (a foreign object: not watched).
final class UnwatchedNames: Sendable {
    private let names = Mutex<[ReplicationKey: Set<ReplicaRef>]>([:])

    func contains(_ name: ReplicaRef, in key: ReplicationKey) -> Bool { names.withLock { $0[key]?.contains(name) == true } }
    func insert(_ name: ReplicaRef, in key: ReplicationKey) { names.withLock { _ = $0[key, default: []].insert(name) } }
    func remove(_ name: ReplicaRef, in key: ReplicationKey) {
        names.withLock { n in
            n[key]?.remove(name)
            if n[key]?.isEmpty == true { n[key] = nil }
        }
    }
}
