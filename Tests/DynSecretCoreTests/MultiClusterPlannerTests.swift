import Testing
@testable import DynSecretCore

/// One planner for every cluster: `targets.clusters` picks the clusters, the namespace forms apply inside each,
/// sources come from the hub only, and replicas carry their hub so two hubs never take each other's.
@Suite struct MultiClusterPlannerTests {
    static let source = R.secret("platform", "regcred", ["token": "v1"])
    static let members = [MemberCluster(name: "prod-eu", access: .context("prod-eu")), MemberCluster(name: "staging", access: .context("staging"))]

    static func policy(_ rules: ReplicationRule..., onClusterRemove: ReplicationPolicy.OnClusterRemove = .retain) -> ReplicationPolicy {
        ReplicationPolicy(name: "p", rules: rules, clusters: members, onClusterRemove: onClusterRemove)
    }

    static func rule(_ clusters: [String], patterns: [String] = ["*"]) -> ReplicationRule {
        var r = R.rule("r", patterns: patterns)
        r.targets.clusters = clusters
        return r
    }

    /// A member's state: its own namespaces and objects, the hub's sources in compact form.
    static func member(_ namespaces: [String], objects: [Secret] = []) -> ReplicationState {
        ReplicationState(namespaces: namespaces.map { R.ns($0) }, secrets: objects, sources: [SourceObject(Self.source)])
    }

    @Test func rulesWriteOnlyIntoTheClustersTheyName() async throws {
        let policy = Self.policy(Self.rule(["prod-*"]))
        let eu = ReplicationScope(cluster: "prod-eu", hub: "hub-a")
        // In a member the source namespace is a namespace like any other, and a member Secret of the source's
        // name is not the source.
        let own = R.secret("platform", "regcred", ["token": "member-local"])
        let (plan, _, after, again) = await Self.converge(policy, Self.member(["platform", "team-a"], objects: [own]), eu)
        #expect(R.writes(plan) == ["create team-a/regcred"])
        #expect(R.reports(plan) == ["platform/regcred: conflict: Secret platform/regcred exists and is not managed by dynsecret; left alone (onConflict: skip)"])
        let copy = try #require(after.secret("team-a", "regcred"))
        #expect(copy.data == Self.source.data)
        #expect(copy.metadata.annotations[ReplicaMarkers.sourceClusterAnnotation] == "hub-a")
        #expect(again.writes.isEmpty)
        // Not the other member, not the hub.
        #expect(ReplicationPlanner.plan(policy, Self.member(["team-a"]), scope: ReplicationScope(cluster: "staging", hub: "hub-a")).writes.isEmpty)
        let hubPlan = ReplicationPlanner.plan(policy, ReplicationState(namespaces: [R.ns("platform"), R.ns("team-a")], secrets: [Self.source]),
                                              scope: ReplicationScope(hub: "hub-a"))
        #expect(hubPlan.writes.isEmpty)
    }

    @Test func aMissingSourceIsReportedOnceByTheHub() {
        let policy = Self.policy(Self.rule(["local", "prod-eu"]))
        let member = ReplicationPlanner.plan(policy, ReplicationState(namespaces: [R.ns("team-a")]), scope: ReplicationScope(cluster: "prod-eu"))
        #expect(member.actions.isEmpty)
        let hub = ReplicationPlanner.plan(policy, ReplicationState(namespaces: [R.ns("platform"), R.ns("team-a")]))
        #expect(R.reports(hub) == ["platform/regcred: source Secret platform/regcred not found"])
    }

    @Test func anotherHubsReplicaIsNeverTakenOrPruned() async {
        let policy = Self.policy(Self.rule(["prod-eu"], patterns: ["team-*"]))
        var theirs = R.replica(of: Self.source, in: "team-a")
        theirs.metadata.annotations[ReplicaMarkers.sourceClusterAnnotation] = "hub-b"
        var theirsUntargeted = R.replica(of: Self.source, in: "other")
        theirsUntargeted.metadata.annotations[ReplicaMarkers.sourceClusterAnnotation] = "hub-b"
        let state = Self.member(["team-a", "other"], objects: [theirs, theirsUntargeted])
        let plan = ReplicationPlanner.plan(policy, state, scope: ReplicationScope(cluster: "prod-eu", hub: "hub-a"))
        #expect(plan.writes.isEmpty, "\(R.writes(plan))")
        #expect(R.reports(plan) == ["team-a/regcred: conflict: Secret team-a/regcred is a replica written by hub hub-b; left alone (never adopted or overwritten)"])
        // An unnamed hub sees a named hub's replica as that hub's too.
        #expect(ReplicationPlanner.plan(policy, state, scope: ReplicationScope(cluster: "prod-eu")).writes.isEmpty)
        // Its own replica is pruned as usual.
        var mine = theirsUntargeted
        mine.metadata.annotations[ReplicaMarkers.sourceClusterAnnotation] = "hub-a"
        let own = ReplicationPlanner.plan(policy, Self.member(["other"], objects: [mine]), scope: ReplicationScope(cluster: "prod-eu", hub: "hub-a"))
        #expect(R.writes(own) == ["delete other/regcred"])
    }

    @Test func aReplicaWrittenBeforeTheHubWasNamedIsTakenOverInPlace() {
        let policy = Self.policy(Self.rule(["local"], patterns: ["team-*"]))
        let legacy = R.replica(of: Self.source, in: "team-a")
        let plan = ReplicationPlanner.plan(policy, ReplicationState(namespaces: [R.ns("platform"), R.ns("team-a")], secrets: [Self.source, legacy]),
                                           scope: ReplicationScope(hub: "hub-a"))
        #expect(R.writes(plan) == ["update team-a/regcred"])
        #expect(plan.writes[0].object?.metadata.annotations[ReplicaMarkers.sourceClusterAnnotation] == "hub-a")
    }

    @Test func aClusterNoRuleTargetsKeepsItsReplicasUnlessThePolicySaysDelete() {
        var mine = R.replica(of: Self.source, in: "team-a")
        mine.metadata.annotations[ReplicaMarkers.sourceClusterAnnotation] = "hub-a"
        let scope = ReplicationScope(cluster: "staging", hub: "hub-a")
        let kept = ReplicationPlanner.plan(Self.policy(Self.rule(["prod-eu"])), Self.member(["team-a"], objects: [mine]), scope: scope)
        #expect(kept.writes.isEmpty)
        #expect(R.reports(kept) == ["team-a/regcred: cluster staging is no longer targeted by any rule; replica retained (onClusterRemove: retain)"])
        let deleted = ReplicationPlanner.plan(Self.policy(Self.rule(["prod-eu"]), onClusterRemove: .delete), Self.member(["team-a"], objects: [mine]), scope: scope)
        #expect(R.writes(deleted) == ["delete team-a/regcred"])
        // A cluster still targeted prunes a namespace the rule narrows away from, as in one cluster.
        let narrowed = ReplicationPlanner.plan(Self.policy(Self.rule(["staging"], patterns: ["other-*"])), Self.member(["team-a"], objects: [mine]), scope: scope)
        #expect(R.writes(narrowed) == ["delete team-a/regcred"])
    }

    @Test func contextPatternClustersAreTargetedByTheirEntrysName() {
        let scope = ReplicationScope(cluster: "gpu-pool-7", hub: "hub-a", aliases: ["gpu-pools"])
        #expect(scope.isTargeted(by: Self.rule(["gpu-pools"])))
        #expect(scope.isTargeted(by: Self.rule(["gpu-pool-*"])))
        #expect(!scope.isTargeted(by: Self.rule(["local"])))
        #expect(ReplicationScope.local.isTargeted(by: R.rule()), "rules target the hub by default")
    }

    @Test func policyClustersAndTheirErrors() throws {
        func load(_ clusters: String, targets: String = "{namespaces: [a], clusters: [local, prod-eu]}") throws(ManifestError) -> ReplicationPolicy {
            try ReplicationPolicy.load(Array("""
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: p}
            spec:
              clusters: \(clusters)
              rules:
              - name: r
                source: {namespace: platform, name: regcred}
                targets: \(targets)
            """.utf8), source: "policy.yaml")
        }
        let p = try load("[{name: prod-eu, kubeconfigSecret: {namespace: dynsecret-system, name: prod-eu}}, {name: gpu, contextPattern: \"gpu-*\"}, {name: st, context: staging}]")
        #expect(p.clusters == [
            MemberCluster(name: "prod-eu", access: .kubeconfigSecret(namespace: "dynsecret-system", name: "prod-eu", key: "kubeconfig")),
            MemberCluster(name: "gpu", access: .contextPattern("gpu-*")), MemberCluster(name: "st", access: .context("staging")),
        ])
        #expect(p.rules[0].targets.clusters == ["local", "prod-eu"])
        #expect(try ReplicationPolicy.decode(p.json) == p)
        #expect(try load("[]", targets: "{namespaces: [a]}").rules[0].targets.clusters == ["local"])
        let bad: [(String, String, String)] = [
            ("[{name: local, context: x}]", "{namespaces: [a]}", #"spec.clusters[0].name: "local" is the hub itself"#),
            ("[{name: a, context: x}, {name: a, context: y}]", "{namespaces: [a]}", "spec.clusters[1].name: duplicate cluster name"),
            ("[{name: a}]", "{namespaces: [a]}", "spec.clusters[0].kubeconfigSecret: required value: give kubeconfigSecret, context or contextPattern"),
            ("[{name: a, context: x, contextPattern: y}]", "{namespaces: [a]}", "context and contextPattern are mutually exclusive"),
            ("[{name: a, contextPattern: \"[\"}]", "{namespaces: [a]}", "spec.clusters[0].contextPattern: invalid glob"),
            ("[{name: a, kubeconfigSecret: {namespace: ns}}]", "{namespaces: [a]}", "spec.clusters[0].kubeconfigSecret.name: required value"),
            ("[{name: a, context: x}]", "{namespaces: [a], clusters: [prod]}", #"spec.rules[0].targets.clusters[0]: unknown cluster "prod": declare it in spec.clusters"#),
            ("[{name: a, context: x}]", "{namespaces: [a], clusters: []}", "spec.rules[0].targets.clusters: at least one cluster"),
            ("[{name: a, context: x}]", "{namespaces: [a], clusters: [\"a[\"]}", "spec.rules[0].targets.clusters[0]: invalid glob"),
        ]
        for (clusters, targets, message) in bad {
            do {
                _ = try load(clusters, targets: targets)
                Issue.record("accepted \(clusters) \(targets)")
            } catch {
                #expect(error.description.contains(message), "\(error.description)")
            }
        }
    }

    static func converge(_ policy: ReplicationPolicy, _ state: ReplicationState, _ scope: ReplicationScope) async
        -> (plan: ReplicationPlan, result: ReplicationApplyResult, after: ReplicationState, again: ReplicationPlan) {
        let plan = ReplicationPlanner.plan(policy, state, scope: scope)
        var cluster = InMemoryReplicationCluster(state)
        let result = await ReplicationApplier.apply(plan, to: &cluster)
        return (plan, result, cluster.state, ReplicationPlanner.plan(policy, cluster.state, scope: scope))
    }
}
