import Testing
@testable import DynSecretCore

@Suite struct ReplicationPlannerTests {
    static let source = R.secret("platform", "regcred", [".dockerconfigjson": #"{"auths":{}}"#], type: SecretType.dockerConfigJSON,
                                 labels: ["team": "ml", "other": "x"], annotations: ["owner": "ops", ReplicaMarkers.lastApplied: "{}"])
    static let baseNamespaces = ["platform", "a", "b", "team-1", "team-2", "kube-system", "kube-public", "kube-node-lease", "default"].map { R.ns($0) }

    @Test func explicitGlobAndSelectorTargets() async {
        var namespaces = Self.baseNamespaces
        namespaces.append(R.ns("gpu-x", ["gpu": "true"]))
        namespaces.append(R.ns("gpu-y", ["gpu": "false"]))
        let policy = R.policy(R.rule(namespaces: ["a"], patterns: ["team-*"], selector: LabelSelector(matchLabels: ["gpu": "true"]),
                                     copyLabels: ["team"], copyAnnotations: ["owner", "missing"]))
        let (plan, result, after, again) = await R.converge(policy, ReplicationState(namespaces: namespaces, secrets: [Self.source]))
        #expect(R.writes(plan) == ["create a/regcred", "create gpu-x/regcred", "create team-1/regcred", "create team-2/regcred"])
        #expect(result.failures.isEmpty && result.applied == 4)
        let replica = try! #require(after.secret("team-1", "regcred"))
        #expect(replica.type == SecretType.dockerConfigJSON)
        #expect(replica.data == Self.source.data)
        #expect(replica.metadata.labels == ["team": "ml", "app.kubernetes.io/managed-by": "dynsecret", "dynsecret.io/replica": "true"])
        #expect(replica.metadata.annotations == [
            "owner": "ops", "dynsecret.io/source": "platform/regcred", "dynsecret.io/source-uid": "uid-platform-regcred",
            "dynsecret.io/rule": "p/r", "dynsecret.io/content-hash": ReplicaContentHash.of(Self.source),
        ])
        #expect(again.writes.isEmpty)
        #expect(plan.replicas.count == 4)
    }

    @Test func excludesDefaultExcludesAndSourceNamespace() async {
        let policy = R.policy(R.rule(namespaces: ["platform", "kube-system"], patterns: ["*"], exclude: ["b"]))
        let plan = ReplicationPlanner.plan(policy, ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source]))
        #expect(R.writes(plan) == ["create a/regcred", "create default/regcred", "create team-1/regcred", "create team-2/regcred"])
        #expect(R.reports(plan) == [
            "kube-system/regcred: target namespace kube-system is listed but excluded (excludeNamespaces); skipped",
            "platform/regcred: namespace platform holds sources of the policy; never a target",
        ])
        // A policy that lists no exclusions may target kube-system.
        var open = policy
        open.excludeNamespaces = []
        let plan2 = ReplicationPlanner.plan(open, ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source]))
        #expect(R.writes(plan2).contains("create kube-system/regcred"))
        #expect(!R.writes(plan2).contains { $0.hasPrefix("create platform/") || $0.hasPrefix("create b/") })
    }

    @Test func terminatingNamespacesAreSkippedAndReported() async {
        let namespaces = [R.ns("platform"), R.ns("a"), R.ns("b", terminating: true)]
        let plan = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a", "b"])), ReplicationState(namespaces: namespaces, secrets: [Self.source]))
        #expect(R.writes(plan) == ["create a/regcred"])
        #expect(R.reports(plan) == ["b/regcred: namespace b is terminating; skipped"])
    }

    @Test func missingTargetNamespaceReported() {
        let plan = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["nope"])), ReplicationState(namespaces: [R.ns("platform")], secrets: [Self.source]))
        #expect(plan.writes.isEmpty)
        #expect(R.reports(plan) == ["nope/regcred: target namespace nope not found"])
    }

    @Test func rename() async {
        let policy = R.policy(R.rule(namespaces: ["a"], targetName: "registry-creds"))
        let (plan, _, after, again) = await R.converge(policy, ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source]))
        #expect(R.writes(plan) == ["create a/registry-creds"])
        #expect(after.secret("a", "registry-creds")?.metadata.annotations[ReplicaMarkers.sourceAnnotation] == "platform/regcred")
        #expect(again.writes.isEmpty)
    }

    @Test func createOnlyAndSync() async {
        var stale = R.replica(of: Self.source, in: "a")
        stale.data = [".dockerconfigjson": Array(#"{"auths":{"old":{}}}"#.utf8)]
        let state = ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, stale])
        let createOnly = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a", "b"], mode: .createOnly)), state)
        #expect(R.writes(createOnly) == ["create b/regcred"])
        #expect(R.reports(createOnly) == ["a/regcred: replica differs from its source; not updated (mode: create-only)"])
        let sync = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a", "b"])), state)
        #expect(R.writes(sync) == ["update a/regcred", "create b/regcred"])
    }

    @Test func driftIsRestoredWithPreconditions() async {
        var drifted = R.replica(of: Self.source, in: "a", rv: "42")
        drifted.data[".dockerconfigjson"] = Array("{}".utf8)
        drifted.metadata.annotations[ReplicaMarkers.contentHashAnnotation] = ReplicaContentHash.of(drifted)
        drifted.metadata.labels["added-by-someone"] = "yes"
        let (plan, _, after, again) = await R.converge(R.policy(R.rule(namespaces: ["a"])), ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, drifted]))
        let update = try! #require(plan.writes.first)
        #expect(plan.writes.count == 1 && update.kind == .update)
        #expect(update.precondition == ReplicationPrecondition(uid: "uid-a-regcred", resourceVersion: "42"))
        #expect(update.reason == "content differs from source")
        #expect(after.secret("a", "regcred")?.data == Self.source.data)
        #expect(after.secret("a", "regcred")?.metadata.labels["added-by-someone"] == "yes")
        #expect(again.writes.isEmpty)
    }

    /// A replica re-applied from an old manifest: every marker (source uid, content hash) matches, the data does not.
    @Test func staleReplicaWithMatchingVersionsIsFixed() async {
        var stale = R.replica(of: Self.source, in: "a")
        stale.data[".dockerconfigjson"] = Array(#"{"auths":{"old.example":{}}}"#.utf8)
        #expect(stale.metadata.annotations[ReplicaMarkers.contentHashAnnotation] == ReplicaContentHash.of(Self.source))
        let (plan, _, after, again) = await R.converge(R.policy(R.rule(namespaces: ["a"])), ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, stale]))
        #expect(R.writes(plan) == ["update a/regcred"])
        #expect(after.secret("a", "regcred")?.data == Self.source.data)
        #expect(again.writes.isEmpty)
    }

    @Test func inSyncReplicaIsLeftAlone() {
        let plan = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a"])), ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, R.replica(of: Self.source, in: "a")]))
        #expect(plan.actions.isEmpty)
        #expect(plan.replicas.count == 1)
    }

    @Test func conflictSkipAdoptOverwrite() async {
        let foreign = R.secret("a", "regcred", ["mine": "tenant-value"], labels: ["tenant": "a"], annotations: ["note": "keep"], rv: "9")
        let state = ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, foreign])

        let skip = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a"])), state)
        #expect(skip.writes.isEmpty)
        #expect(R.reports(skip) == ["a/regcred: conflict: Secret a/regcred exists and is not managed by dynsecret; left alone (onConflict: skip)"])
        #expect(skip.replicas.isEmpty)

        // Opaque foreign vs dockerconfigjson source: adopting would need a type change, which is refused.
        let adoptTypeChange = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a"], onConflict: .adopt)), state)
        #expect(adoptTypeChange.writes.isEmpty)
        #expect(R.reports(adoptTypeChange).first?.contains("cannot adopt") == true)

        let sameType = R.secret("a", "regcred", ["mine": "tenant-value"], type: SecretType.dockerConfigJSON, labels: ["tenant": "a"], annotations: ["note": "keep"], rv: "9")
        let state2 = ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, sameType])
        let adopt = await R.converge(R.policy(R.rule(namespaces: ["a"], onConflict: .adopt)), state2)
        #expect(R.writes(adopt.plan) == ["update a/regcred"])
        #expect(adopt.plan.writes[0].precondition == ReplicationPrecondition(uid: "uid-a-regcred", resourceVersion: "9"))
        let adopted = try! #require(adopt.after.secret("a", "regcred"))
        #expect(ReplicaMarkers.isOwned(adopted.metadata) && adopted.metadata.labels["tenant"] == "a" && adopted.metadata.annotations["note"] == "keep")
        #expect(adopted.data == Self.source.data)
        #expect(adopt.again.writes.isEmpty)

        let overwrite = await R.converge(R.policy(R.rule(namespaces: ["a"], onConflict: .overwrite)), state)
        #expect(R.writes(overwrite.plan) == ["delete a/regcred", "create a/regcred"])
        let replaced = try! #require(overwrite.after.secret("a", "regcred"))
        #expect(replaced.metadata.labels["tenant"] == nil && replaced.type == SecretType.dockerConfigJSON)
        #expect(overwrite.again.writes.isEmpty)
        let overwriteSameType = await R.converge(R.policy(R.rule(namespaces: ["a"], onConflict: .overwrite)), state2)
        #expect(R.writes(overwriteSameType.plan) == ["update a/regcred"])
        #expect(overwriteSameType.after.secret("a", "regcred")?.metadata.labels["tenant"] == nil)
        #expect(overwriteSameType.again.writes.isEmpty)
    }

    @Test func pruneOnNarrowing() async {
        let state = ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, R.replica(of: Self.source, in: "a"), R.replica(of: Self.source, in: "b", rv: "7")])
        let narrowed = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a"])), state)
        #expect(R.writes(narrowed) == ["delete b/regcred"])
        #expect(narrowed.writes[0].precondition == ReplicationPrecondition(uid: "uid-b-regcred", resourceVersion: "7"))
        let kept = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a"], prune: false)), state)
        #expect(kept.writes.isEmpty)
        #expect(R.reports(kept) == ["b/regcred: no longer targeted; retained (prune: false)"])
        // A replica of another policy is not ours to prune.
        var otherPolicy = R.replica(of: Self.source, in: "team-1")
        otherPolicy.metadata.annotations[ReplicaMarkers.ruleAnnotation] = "q/r"
        let plan = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a"])), ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, otherPolicy]))
        #expect(R.writes(plan) == ["create a/regcred"])
    }

    @Test func sourceDeletedRetainAndDelete() async {
        let state = ReplicationState(namespaces: Self.baseNamespaces, secrets: [R.replica(of: Self.source, in: "a"), R.replica(of: Self.source, in: "b")])
        let retain = ReplicationPlanner.plan(R.policy(R.rule(namespaces: ["a", "b"])), state)
        #expect(retain.writes.isEmpty)
        #expect(R.reports(retain) == [
            "a/regcred: source platform/regcred deleted; replica retained (onSourceDelete: retain)",
            "b/regcred: source platform/regcred deleted; replica retained (onSourceDelete: retain)",
            "platform/regcred: source Secret platform/regcred not found",
        ])
        let delete = await R.converge(R.policy(R.rule(namespaces: ["a", "b"], onSourceDelete: .delete)), state)
        #expect(R.writes(delete.plan) == ["delete a/regcred", "delete b/regcred"])
        #expect(delete.after.secrets.isEmpty && delete.again.writes.isEmpty)
    }

    @Test func typeChangeIsDeletePlusCreate() async {
        let old = R.replica(of: R.secret("platform", "regcred", ["k": "v"], type: "Opaque"), in: "a")
        let (plan, result, after, again) = await R.converge(R.policy(R.rule(namespaces: ["a"])), ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, old]))
        #expect(R.writes(plan) == ["delete a/regcred", "create a/regcred"])
        #expect(plan.writes[0].precondition?.uid == old.metadata.uid)
        #expect(result.failures.isEmpty)
        #expect(after.secret("a", "regcred")?.type == SecretType.dockerConfigJSON)
        #expect(again.writes.isEmpty)
    }

    @Test func immutableSource() async {
        var src = Self.source
        src.immutable = true
        // First run: create an immutable replica.
        let first = await R.converge(R.policy(R.rule(namespaces: ["a"])), ReplicationState(namespaces: Self.baseNamespaces, secrets: [src]))
        #expect(R.writes(first.plan) == ["create a/regcred"])
        #expect(first.after.secret("a", "regcred")?.immutable == true)
        #expect(first.again.writes.isEmpty)
        // The source is replaced with new content: the immutable replica is deleted and recreated, never updated.
        var state = first.after
        let i = state.secrets.firstIndex { $0.metadata.namespace == "platform" }!
        state.secrets[i].data[".dockerconfigjson"] = Array(#"{"auths":{"new.example":{}}}"#.utf8)
        state.secrets[i].metadata.uid = "uid-new"
        let second = await R.converge(R.policy(R.rule(namespaces: ["a"])), state)
        #expect(R.writes(second.plan) == ["delete a/regcred", "create a/regcred"])
        #expect(second.result.failures.isEmpty)
        #expect(second.after.secret("a", "regcred")?.data == state.secrets[i].data)
        #expect(second.again.writes.isEmpty)
    }

    @Test func twoRulesOnOneTargetAreReportedAndNotWritten() async {
        let other = R.secret("platform", "other")
        let policy = R.policy(R.rule("first", namespaces: ["a", "b"], targetName: "shared"),
                              R.rule("second", source: .init(namespace: "platform", name: "other"), namespaces: ["a"], targetName: "shared"))
        let plan = ReplicationPlanner.plan(policy, ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, other]))
        #expect(R.writes(plan) == ["create b/shared"])
        let conflict = plan.actions.first { $0.kind == .report }
        #expect(conflict?.rules == ["first", "second"])
        #expect(conflict?.reason == "conflict: rules first and second both write this Secret; nothing written")
        #expect(conflict?.namespace == "a" && conflict?.name == "shared")
        // An existing replica at the contested name is neither updated nor pruned.
        var existing = R.replica(of: Self.source, in: "a", name: "shared", rule: "first")
        existing.data = ["stale": [1]]
        let plan2 = ReplicationPlanner.plan(policy, ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, other, existing]))
        #expect(R.writes(plan2) == ["create b/shared"])
    }

    @Test func serviceAccountPatchingIsIdempotentAndKeepsEntries() async {
        let sas = [R.sa("a", "default", ["existing", "other"]), R.sa("b", "default", ["regcred"]), R.sa("a", "runner")]
        let second = R.secret("platform", "mirror", type: "Opaque")
        let policy = R.policy(R.rule(namespaces: ["a", "b", "team-1"], serviceAccounts: ["default", "runner"]),
                              R.rule("two", source: .init(namespace: "platform", name: "mirror"), namespaces: ["a"], serviceAccounts: ["default"]))
        let (plan, _, after, again) = await R.converge(policy, ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, second], serviceAccounts: sas))
        #expect(R.writes(plan) == ["create a/mirror", "create a/regcred", "patch-serviceaccount a/default", "patch-serviceaccount a/runner", "create b/regcred", "create team-1/regcred"])
        #expect(plan.writes[2].addImagePullSecrets == ["mirror", "regcred"])
        #expect(after.serviceAccounts[0].imagePullSecrets == ["existing", "other", "mirror", "regcred"])
        #expect(after.serviceAccounts[1].imagePullSecrets == ["regcred"])
        #expect(after.serviceAccounts[2].imagePullSecrets == ["regcred"])
        #expect(R.reports(plan).contains("team-1/default: ServiceAccount team-1/default not found; imagePullSecrets not patched"))
        #expect(again.writes.isEmpty)
        #expect(plan.serviceAccounts.map(\.imagePullSecrets) == after.serviceAccounts.map(\.imagePullSecrets))
        #expect(ServiceAccountPatch.apply(["x", "x", "y"], to: ["y", "z"]) == ["y", "z", "x"])
    }

    @Test func selectorSourceNeverCopiesReplicas() async {
        let a = R.secret("platform", "one", labels: ["share": "yes"])
        let b = R.secret("platform", "two", labels: ["share": "yes"])
        let c = R.secret("platform", "three", labels: ["share": "no"])
        var replicaInSource = R.replica(of: R.secret("x", "y"), in: "platform", name: "four")
        replicaInSource.metadata.labels["share"] = "yes"
        let policy = R.policy(R.rule(source: .init(namespace: "platform", selector: LabelSelector(matchLabels: ["share": "yes"])), namespaces: ["a"]))
        let (plan, _, _, again) = await R.converge(policy, ReplicationState(namespaces: Self.baseNamespaces, secrets: [a, b, c, replicaInSource]))
        #expect(R.writes(plan) == ["create a/one", "create a/two"])
        #expect(again.writes.isEmpty)
    }

    @Test func planIsDeterministic() {
        let state = ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source, R.replica(of: Self.source, in: "b"), R.secret("a", "regcred")], serviceAccounts: [R.sa("team-1")])
        let policy = R.policy(R.rule(patterns: ["*"], serviceAccounts: ["default"]))
        let one = ReplicationPlanner.plan(policy, state)
        var shuffled = state
        shuffled.namespaces.reverse()
        shuffled.secrets.reverse()
        #expect(ReplicationPlanner.plan(policy, shuffled) == one)
    }

    @Test func failuresInOneTargetDoNotStopOthers() async {
        let policy = R.policy(R.rule(namespaces: ["a", "b", "team-1"]))
        let state = ReplicationState(namespaces: Self.baseNamespaces, secrets: [Self.source])
        let plan = ReplicationPlanner.plan(policy, state)
        var cluster = InMemoryReplicationCluster(state)
        // Someone creates b/regcred between planning and applying: that create fails, the others succeed.
        try! await cluster.create(.secret(R.secret("b", "regcred")))
        let result = await ReplicationApplier.apply(plan, to: &cluster)
        #expect(result.applied == 2)
        #expect(result.failures.map(\.action.name) == ["regcred"] && result.failures[0].action.namespace == "b")
        #expect(result.failures[0].message == "secrets \"regcred\" already exists")
    }
}

/// The emulator acceptance scenario, run against the in-memory cluster: 1 source → 2,000 namespaces.
@Suite struct ReplicationScaleTests {
    @Test func twoThousandNamespaces() async throws {
        var namespaces = [R.ns("platform")]
        for i in 0..<2_000 { namespaces.append(R.ns("team-\(i)", ["pull": "yes"])) }
        namespaces.append(R.ns("tenant", ["pull": "yes"]))
        let foreign = R.secret("tenant", "regcred", ["mine": "x"], type: SecretType.dockerConfigJSON)
        let source = R.secret("platform", "regcred", [".dockerconfigjson": #"{"auths":{}}"#], type: SecretType.dockerConfigJSON)
        let policy = R.policy(R.rule(selector: LabelSelector(matchLabels: ["pull": "yes"])))
        var cluster = InMemoryReplicationCluster(ReplicationState(namespaces: namespaces, secrets: [source, foreign]))

        let first = ReplicationPlanner.plan(policy, cluster.state)
        _ = await ReplicationApplier.apply(first, to: &cluster)
        #expect(cluster.writeCounts == ["create": 2_000])
        #expect(R.reports(first) == ["tenant/regcred: conflict: Secret tenant/regcred exists and is not managed by dynsecret; left alone (onConflict: skip)"])

        let second = ReplicationPlanner.plan(policy, cluster.state)
        #expect(second.writes.isEmpty)

        let i = cluster.state.secrets.firstIndex { $0.metadata.namespace == "platform" }!
        cluster.state.secrets[i].data[".dockerconfigjson"] = Array(#"{"auths":{"new":{}}}"#.utf8)
        let third = ReplicationPlanner.plan(policy, cluster.state)
        _ = await ReplicationApplier.apply(third, to: &cluster)
        #expect(cluster.writeCounts == ["create": 2_000, "update": 2_000])
        #expect(cluster.state.secret("tenant", "regcred") == foreign)
    }
}
