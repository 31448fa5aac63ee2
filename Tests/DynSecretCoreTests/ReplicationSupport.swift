@testable import DynSecretCore

/// Builders for replication tests.
enum R {
    static func ns(_ name: String, _ labels: [String: String] = [:], terminating: Bool = false) -> ReplicationNamespace {
        ReplicationNamespace(name: name, labels: labels, terminating: terminating)
    }

    static func secret(_ namespace: String, _ name: String, _ data: [String: String] = ["k": "v"], type: String = "Opaque",
                       labels: [String: String] = [:], annotations: [String: String] = [:], uid: String? = nil, rv: String = "1",
                       immutable: Bool? = nil) -> Secret {
        var meta = ObjectMeta(name: name, namespace: namespace, labels: labels, annotations: annotations)
        meta.uid = uid ?? "uid-\(namespace)-\(name)"
        meta.resourceVersion = rv
        return Secret(metadata: meta, type: type, data: data.mapValues { Array($0.utf8) }, immutable: immutable)
    }

    static func sa(_ namespace: String, _ name: String = "default", _ pullSecrets: [String] = []) -> ServiceAccount {
        var meta = ObjectMeta(name: name, namespace: namespace)
        meta.uid = "sa-\(namespace)-\(name)"
        meta.resourceVersion = "1"
        return ServiceAccount(metadata: meta, imagePullSecrets: pullSecrets)
    }

    static func rule(_ name: String = "r", source: ReplicationRule.Source = .init(namespace: "platform", name: "regcred"),
                     namespaces: [String] = [], patterns: [String] = [], selector: LabelSelector? = nil, exclude: [String] = [],
                     targetName: String? = nil, mode: ReplicationRule.Mode = .sync, onConflict: ReplicationRule.OnConflict = .skip,
                     prune: Bool = true, onSourceDelete: ReplicationRule.OnSourceDelete = .retain, serviceAccounts: [String] = [],
                     copyLabels: [String] = [], copyAnnotations: [String] = []) -> ReplicationRule {
        ReplicationRule(
            name: name, source: source,
            targets: .init(namespaces: namespaces, namespacePatterns: patterns, namespaceSelector: selector, excludeNamespaces: exclude),
            targetName: targetName, mode: mode, onConflict: onConflict, prune: prune, onSourceDelete: onSourceDelete,
            serviceAccounts: serviceAccounts, copyLabels: copyLabels, copyAnnotations: copyAnnotations
        )
    }

    static func policy(_ rules: ReplicationRule...) -> ReplicationPolicy { ReplicationPolicy(name: "p", rules: rules) }

    /// A replica exactly as the planner would create it from `source` under rule `p/RULE`.
    static func replica(of source: Secret, in namespace: String, name: String? = nil, rule: String = "r", rv: String = "5") -> Secret {
        var s = secret(namespace, name ?? source.metadata.name!, [:], type: source.effectiveType, rv: rv)
        s.data = source.mergedData
        s.metadata.labels = [ReplicaMarkers.managedByLabel: "dynsecret", ReplicaMarkers.replicaLabel: "true"]
        s.metadata.annotations = [
            ReplicaMarkers.sourceAnnotation: "\(source.metadata.namespace!)/\(source.metadata.name!)",
            ReplicaMarkers.sourceUIDAnnotation: source.metadata.uid!,
            ReplicaMarkers.ruleAnnotation: "p/\(rule)",
            ReplicaMarkers.contentHashAnnotation: ReplicaContentHash.of(source),
        ]
        s.immutable = source.immutable == true ? true : nil
        return s
    }

    /// Plans, applies the plan to an in-memory cluster, and plans again.
    static func converge(_ policy: ReplicationPolicy, _ state: ReplicationState) async -> (plan: ReplicationPlan, result: ReplicationApplyResult, after: ReplicationState, again: ReplicationPlan) {
        let plan = ReplicationPlanner.plan(policy, state)
        var cluster = InMemoryReplicationCluster(state)
        let result = await ReplicationApplier.apply(plan, to: &cluster)
        return (plan, result, cluster.state, ReplicationPlanner.plan(policy, cluster.state))
    }

    /// `KIND NS/NAME` for each write, in plan order.
    static func writes(_ plan: ReplicationPlan) -> [String] {
        plan.writes.map { "\($0.kind.rawValue) \($0.namespace)/\($0.name)" }
    }

    static func reports(_ plan: ReplicationPlan) -> [String] {
        plan.actions.filter { $0.kind == .report }.map { "\($0.namespace)/\($0.name): \($0.reason)" }
    }
}

extension ReplicationState {
    func secret(_ namespace: String, _ name: String) -> Secret? {
        secrets.first { $0.metadata.namespace == namespace && $0.metadata.name == name }
    }
}
