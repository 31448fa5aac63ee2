import Testing
@testable import DynSecretCore

/// The ownership rule, prune safety, source protection and the applier's replace/ServiceAccount handling
/// (review findings 1-5, 8).
@Suite struct ReplicationOwnershipTests {
    static let source = ReplicationPlannerTests.source
    static let namespaces = ReplicationPlannerTests.baseNamespaces

    static func marked(_ ns: String, _ name: String, rule: String? = "p/r", source: String? = "platform/regcred", sourceUID: String? = "uid-platform-regcred") -> Secret {
        var s = R.replica(of: Self.source, in: ns, name: name)
        s.data = ["stale": [1]]
        s.metadata.annotations[ReplicaMarkers.ruleAnnotation] = rule
        s.metadata.annotations[ReplicaMarkers.sourceAnnotation] = source
        s.metadata.annotations[ReplicaMarkers.sourceUIDAnnotation] = sourceUID
        return s
    }

    // MARK: 1. ownership

    @Test func labelsAloneAreNotOwnership() {
        for (existing, why) in [
            (Self.marked("a", "regcred", rule: nil), "no rule annotation"),
            (Self.marked("a", "regcred", rule: "p/gone"), "rule not in the policy"),
            (Self.marked("a", "regcred", source: "platform/other"), "another source"),
            (Self.marked("a", "regcred", source: nil), "no source annotation"),
        ] {
            let plan = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a"])), ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, existing]))
            #expect(plan.writes.isEmpty, "\(why)")
            #expect(R.reports(plan) == ["a/regcred: conflict: Secret a/regcred exists and is not a replica of platform/regcred by a rule of policy p; left alone (onConflict: skip)"], "\(why)")
            #expect(plan.replicas.isEmpty, "\(why)")
        }
    }

    /// The source was deleted and recreated: the replica's source-uid differs, it is still ours and is updated.
    @Test func recreatedSourceReplicaIsStillOurs() async {
        let existing = Self.marked("a", "regcred", sourceUID: "uid-of-the-deleted-source")
        let c = await R.converge(R.policy(R.rule(namespaces: ["a"])), ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, existing]))
        #expect(R.writes(c.plan) == ["update a/regcred"])
        #expect(c.after.secret("a", "regcred")?.metadata.annotations[ReplicaMarkers.sourceUIDAnnotation] == "uid-platform-regcred")
        #expect(c.again.writes.isEmpty)
    }

    /// A replica written by a rule of this policy from the same source is ours, even under another rule name.
    @Test func replicaOfAnotherRuleOfThisPolicyIsOurs() {
        let existing = Self.marked("a", "regcred", rule: "p/old-name")
        let policy = R.policy(R.rule("old-name", source: .init(namespace: "platform", name: "x"), namespaces: ["b"]), R.rule(namespaces: ["a"]))
        let plan = ReplicationPlanner.plan(policy, ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, existing]))
        #expect(R.writes(plan) == ["update a/regcred"])
    }

    // MARK: 4. other policies

    @Test func anotherPolicysReplicaIsNeverAdoptedOrOverwritten() {
        var theirs = R.replica(of: Self.source, in: "a")
        theirs.metadata.annotations[ReplicaMarkers.ruleAnnotation] = "q/r"
        theirs.data = ["stale": [1]]
        for onConflict in [ReplicationRule.OnConflict.skip, .adopt, .overwrite] {
            let plan = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a"], onConflict: onConflict)), ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, theirs]))
            #expect(plan.writes.isEmpty, "\(onConflict)")
            #expect(R.reports(plan) == ["a/regcred: conflict: Secret a/regcred is a replica of policy q; left alone (never adopted or overwritten)"], "\(onConflict)")
        }
    }

    // MARK: 2. prune

    @Test func pruneOnlyProvableReplicas() async {
        let state = ReplicationState(namespaces: Self.namespaces, secrets: [
            Self.source,
            Self.marked("b", "regcred"), // a real replica in a no-longer-targeted namespace: pruned
            Self.marked("b", "copy"), // renamed copy
            Self.marked("team-1", "regcred", sourceUID: "uid-other"), // source-uid of another object
            Self.marked("team-2", "regcred", source: "platform/other"), // another source
            Self.marked("default", "regcred", source: nil), // no source annotation
        ])
        let plan = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a"])), state)
        #expect(R.writes(plan) == ["create a/regcred", "delete b/regcred"])
        #expect(R.reports(plan) == [
            "b/copy: marked as a replica of rule p/r but its name is not the rule's target name regcred; not pruned, left alone",
            "default/regcred: marked as a replica of rule p/r but its source (none) is not the rule's source; not pruned, left alone",
            "team-1/regcred: marked as a replica of rule p/r but its source-uid uid-other is not the uid of platform/regcred; not pruned, left alone",
            "team-2/regcred: marked as a replica of rule p/r but its source platform/other is not the rule's source; not pruned, left alone",
        ])
        // Source gone: the uid cannot be checked, onSourceDelete decides.
        let gone = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a"], onSourceDelete: .delete)),
                                           ReplicationState(namespaces: Self.namespaces, secrets: [Self.marked("team-1", "regcred", sourceUID: "uid-other")]))
        #expect(R.writes(gone) == ["delete team-1/regcred"])
    }

    @Test func pruneWithSelectorSource() {
        let one = R.secret("platform", "one", labels: ["share": "yes"])
        let off = R.secret("platform", "off", labels: ["share": "no"])
        let rule = R.rule(source: .init(namespace: "platform", selector: LabelSelector(matchLabels: ["share": "yes"])), namespaces: ["a"])
        let state = ReplicationState(namespaces: Self.namespaces, secrets: [
            one, off,
            Self.marked("b", "one", source: "platform/one", sourceUID: "uid-platform-one"),
            Self.marked("b", "off", source: "platform/off", sourceUID: "uid-platform-off"),
            Self.marked("b", "x", source: "elsewhere/x", sourceUID: nil),
        ])
        let plan = ReplicationPlanner.plan(R.policy(rule), state)
        #expect(R.writes(plan) == ["create a/one", "delete b/one"])
        #expect(R.reports(plan) == [
            "b/off: marked as a replica of rule p/r but its source platform/off is not selected by the rule; not pruned, left alone",
            "b/x: marked as a replica of rule p/r but its source elsewhere/x is not in the rule's source namespace; not pruned, left alone",
        ])
    }

    // MARK: 3. sources

    /// b/regcred was a replica of rule r; now it is the named source of rule r2. It is never pruned or updated.
    @Test func formerReplicaThatIsNowASourceIsNeverPruned() {
        let former = R.replica(of: Self.source, in: "b")
        let policy = R.policy(R.rule(namespaces: ["a"]), R.rule("r2", source: .init(namespace: "b", name: "regcred"), namespaces: ["c"]))
        let namespaces = Self.namespaces + [R.ns("c")]
        let plan = ReplicationPlanner.plan(policy, ReplicationState(namespaces: namespaces, secrets: [Self.source, former]))
        #expect(R.writes(plan) == ["create a/regcred", "create c/regcred"])
        #expect(R.reports(plan) == ["b/regcred: source Secret b/regcred carries replica markers (p/r); used as a source, never updated or pruned"])
        // A marked Secret in a source namespace that is not itself a source is reported, not pruned.
        let stray = R.replica(of: Self.source, in: "b", name: "stray")
        let plan2 = ReplicationPlanner.plan(policy, ReplicationState(namespaces: namespaces, secrets: [Self.source, former, stray]))
        #expect(!plan2.writes.contains { $0.kind == .delete })
        #expect(R.reports(plan2).contains("b/stray: carries replica markers of rule p/r in a source namespace of the policy; never pruned"))
    }

    // MARK: 8. targets and selector sources

    @Test func listedButExcludedNamespaceIsReported() {
        let plan = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a", "kube-system", "b"], exclude: ["b"])), ReplicationState(namespaces: Self.namespaces, secrets: [Self.source]))
        #expect(R.writes(plan) == ["create a/regcred"])
        #expect(R.reports(plan) == [
            "b/regcred: target namespace b is listed but excluded (excludeNamespaces); skipped",
            "kube-system/regcred: target namespace kube-system is listed but excluded (excludeNamespaces); skipped",
        ])
    }

    @Test func selectorNeverPicksTokensOrHelmReleases() {
        let shared = R.secret("platform", "shared", labels: ["share": "yes"])
        let token = R.secret("platform", "sa-token", type: "kubernetes.io/service-account-token", labels: ["share": "yes"])
        let helm = R.secret("platform", "sh.helm.release.v1.app.v1", type: "helm.sh/release.v1", labels: ["share": "yes"])
        let rule = R.rule(source: .init(namespace: "platform", selector: LabelSelector(matchExpressions: [.init(key: "share", op: "Exists")])), namespaces: ["a"])
        let plan = ReplicationPlanner.plan(R.policy(rule), ReplicationState(namespaces: Self.namespaces, secrets: [shared, token, helm]))
        #expect(R.writes(plan) == ["create a/shared"])
    }

    // MARK: 5. applier

    /// Wraps the in-memory cluster; fails the next `failCreates` creates and every delete when `failDeletes`.
    struct FlakyWriter: ReplicationWriter {
        var inner: InMemoryReplicationCluster
        var failCreates = 0
        var failDeletes = false
        var creates = 0

        mutating func create(_ object: ReplicaObject) async throws(ReplicationWriteError) {
            creates += 1
            if failCreates > 0 {
                failCreates -= 1
                throw ReplicationWriteError("etcdserver: request timed out")
            }
            try await inner.create(object)
        }
        mutating func update(_ object: ReplicaObject, previous: TargetObject?, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
            try await inner.update(object, previous: previous, precondition: precondition)
        }
        mutating func delete(_ kind: ReplicatedKind, namespace: String, name: String, precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
            if failDeletes { throw ReplicationWriteError("etcdserver: request timed out") }
            try await inner.delete(kind, namespace: namespace, name: name, precondition: precondition)
        }
        mutating func patchServiceAccount(namespace: String, name: String, addImagePullSecrets: [String], precondition: ReplicationPrecondition) async throws(ReplicationWriteError) {
            try await inner.patchServiceAccount(namespace: namespace, name: name, addImagePullSecrets: addImagePullSecrets, precondition: precondition)
        }
    }

    static func typeChangeState() -> (ReplicationPolicy, ReplicationState) {
        let old = R.replica(of: R.secret("platform", "regcred", ["k": "v"], type: "Opaque"), in: "a")
        let policy = R.policy(R.rule(namespaces: ["a", "b"], serviceAccounts: ["default"]))
        return (policy, ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, old], serviceAccounts: [R.sa("a"), R.sa("b")]))
    }

    @Test func deleteOkCreateFailOnceIsRetried() async {
        let (policy, state) = Self.typeChangeState()
        let plan = ReplicationPlanner.plan(policy, state)
        #expect(R.writes(plan) == ["delete a/regcred", "create a/regcred", "patch-serviceaccount a/default", "create b/regcred", "patch-serviceaccount b/default"])
        var w = FlakyWriter(inner: InMemoryReplicationCluster(state), failCreates: 1)
        let result = await ReplicationApplier.apply(plan, to: &w)
        #expect(result.failures.isEmpty && result.applied == 5)
        #expect(w.inner.state.secret("a", "regcred")?.type == SecretType.dockerConfigJSON)
    }

    @Test func deleteOkCreateFailsTwiceIsReplicaMissing() async {
        let (policy, state) = Self.typeChangeState()
        let plan = ReplicationPlanner.plan(policy, state)
        var w = FlakyWriter(inner: InMemoryReplicationCluster(state), failCreates: 2)
        let result = await ReplicationApplier.apply(plan, to: &w)
        #expect(result.failures.map { "\($0.action.kind.rawValue) \($0.action.namespace)/\($0.action.name): \($0.message)" } == [
            "create a/regcred: replica missing after replace: etcdserver: request timed out",
        ])
        #expect(w.inner.state.secret("a", "regcred") == nil)
        // The ServiceAccount patch naming the missing replica is skipped; the other namespace is still written.
        #expect(w.inner.state.serviceAccounts.first { $0.metadata.namespace == "a" }?.imagePullSecrets == [])
        #expect(w.inner.state.serviceAccounts.first { $0.metadata.namespace == "b" }?.imagePullSecrets == ["regcred"])
        #expect(result.skipped == 1 && result.applied == 3)
    }

    @Test func failedDeleteSkipsCreateAndPatch() async {
        let (policy, state) = Self.typeChangeState()
        let plan = ReplicationPlanner.plan(policy, state)
        var w = FlakyWriter(inner: InMemoryReplicationCluster(state), failDeletes: true)
        let result = await ReplicationApplier.apply(plan, to: &w)
        #expect(result.failures.map { "\($0.action.kind.rawValue) \($0.action.namespace)/\($0.action.name)" } == ["delete a/regcred"])
        #expect(result.skipped == 2 && result.applied == 2)
        #expect(w.inner.state.secret("a", "regcred")?.type == "Opaque")
        #expect(w.inner.state.serviceAccounts.first { $0.metadata.namespace == "a" }?.imagePullSecrets == [])
    }

    /// A plan built from manifests without uid/resourceVersion: the planner passes on what it observed, the applier
    /// refuses to send an update or delete without both.
    @Test func updatesAndDeletesWithoutPreconditionsAreRefused() async {
        var drifted = R.replica(of: Self.source, in: "a")
        drifted.data = ["stale": [1]]
        drifted.metadata.uid = nil
        var gone = R.replica(of: Self.source, in: "b")
        gone.metadata.resourceVersion = nil
        let state = ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, drifted, gone])
        let plan = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a"])), state)
        #expect(R.writes(plan) == ["update a/regcred", "delete b/regcred"])
        var cluster = InMemoryReplicationCluster(state)
        let result = await ReplicationApplier.apply(plan, to: &cluster)
        #expect(result.failures.map(\.message) == [
            "refused: update of secrets \"regcred\" without uid and resourceVersion precondition",
            "refused: delete of secrets \"regcred\" without uid and resourceVersion precondition",
        ])
        #expect(cluster.writeCounts.isEmpty)
    }
}
