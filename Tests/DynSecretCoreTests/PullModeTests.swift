import Testing
@testable import DynSecretCore

/// Pull mode (`targets.requested`): a namespace owner asks for a copy with `dynsecret.io/replicate-from` on an
/// object of the rule's kind; the rule's target forms are the namespaces it takes requests from.
@Suite struct PullModeTests {
    static let source = R.secret("platform", "regcred", [".dockerconfigjson": #"{"auths":{"nvcr.io":{"auth":"eA=="}}}"#], type: SecretType.dockerConfigJSON)
    static let namespaces = [R.ns("platform"), R.ns("team-a", ["pull": "yes"]), R.ns("team-b"), R.ns("other"), R.ns("dying", terminating: true)]

    static func rule(_ name: String = "r", patterns: [String] = ["team-*"], namespaces: [String] = [], selector: LabelSelector? = nil,
                     source: ReplicationRule.Source = .init(namespace: "platform", name: "regcred"), mode: ReplicationRule.Mode = .sync,
                     prune: Bool = true, serviceAccounts: [String] = []) -> ReplicationRule {
        var r = R.rule(name, source: source, namespaces: namespaces, patterns: patterns, selector: selector, mode: mode, prune: prune,
                       serviceAccounts: serviceAccounts)
        r.targets.requested = true
        return r
    }

    /// A stub as a namespace owner writes it: the kubectl-accepted placeholder `{}` for a dockerconfigjson Secret.
    static func stub(_ namespace: String, _ name: String, requests: String = "platform/regcred", type: String = SecretType.dockerConfigJSON,
                     labels: [String: String] = ["team": "a"]) -> Secret {
        R.secret(namespace, name, [".dockerconfigjson": "{}\n"], type: type, labels: labels,
                 annotations: [ReplicaMarkers.requestAnnotation: requests, "owner": "team-a"])
    }

    @Test func aStubIsFilledInPlaceUnderItsOwnNameKeepingWhatItCarries() async throws {
        let policy = R.policy(Self.rule())
        let stub = Self.stub("team-a", "nvcr-pull")
        let state = ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, stub])
        let (plan, result, after, again) = await R.converge(policy, state)
        // Only where asked: team-b is allowed but asks for nothing.
        #expect(R.writes(plan) == ["update team-a/nvcr-pull"])
        #expect(plan.writes[0].reason == "adopt (requested): content differs from source")
        #expect(plan.writes[0].precondition == ReplicationPrecondition(uid: stub.metadata.uid, resourceVersion: "1"))
        #expect(result.failures.isEmpty)
        let copy = try #require(after.secret("team-a", "nvcr-pull"))
        #expect(copy.data == Self.source.data && copy.type == Self.source.type)
        #expect(copy.metadata.uid == stub.metadata.uid, "filled in place, never recreated")
        #expect(copy.metadata.annotations[ReplicaMarkers.requestAnnotation] == "platform/regcred", "the request stays")
        #expect(copy.metadata.annotations["owner"] == "team-a" && copy.metadata.labels["team"] == "a")
        #expect(copy.metadata.annotations[ReplicaMarkers.sourceAnnotation] == "platform/regcred")
        #expect(ReplicaMarkers.isOwned(copy.metadata))
        #expect(again.writes.isEmpty, "\(R.writes(again))")
        #expect(plan.replicas.map(\.name) == ["nvcr-pull"])
    }

    @Test func aRequesterCannotPlantDynsecretMarkers() async throws {
        var stub = Self.stub("team-a", "s")
        stub.metadata.annotations[ReplicaMarkers.sourceClusterAnnotation] = "elsewhere"
        stub.metadata.annotations[ReplicaMarkers.ruleAnnotation] = "q/r"
        let (plan, _, after, again) = await R.converge(R.policy(Self.rule()), ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, stub]))
        #expect(R.writes(plan) == ["update team-a/s"])
        let copy = try #require(after.secret("team-a", "s"))
        #expect(copy.metadata.annotations[ReplicaMarkers.sourceClusterAnnotation] == nil && copy.metadata.annotations[ReplicaMarkers.ruleAnnotation] == "p/r")
        #expect(again.writes.isEmpty)
    }

    @Test func aSourceChangeReachesEveryRequestedCopyAndOnlyThose() async {
        let policy = R.policy(Self.rule(selector: LabelSelector(matchLabels: ["pull": "yes"]), serviceAccounts: ["default"]))
        var state = ReplicationState(namespaces: Self.namespaces + [R.ns("labelled", ["pull": "yes"])],
                                     secrets: [Self.source, Self.stub("team-a", "a"), Self.stub("labelled", "b")],
                                     serviceAccounts: [R.sa("labelled")])
        state = await R.converge(policy, state).after
        let i = state.secrets.firstIndex { $0.metadata.namespace == "platform" }!
        state.secrets[i].data[".dockerconfigjson"] = Array(#"{"auths":{"nvcr.io":{"auth":"eQ=="}}}"#.utf8)
        let (plan, _, after, again) = await R.converge(policy, state)
        #expect(R.writes(plan) == ["update labelled/b", "update team-a/a"])
        #expect(plan.writes.allSatisfy { $0.reason == "content differs from source" }, "ours now, not adopted again")
        #expect(after.secret("labelled", "b")?.data == state.secrets[i].data)
        #expect(after.serviceAccounts.first?.imagePullSecrets == ["b"], "serviceAccounts work for requested copies")
        #expect(again.writes.isEmpty)
    }

    @Test func requestsTheRuleDoesNotAllowAreReportedWithWhy() {
        let policy = ReplicationPolicy(name: "p", excludeNamespaces: ["team-b"], rules: [Self.rule(patterns: ["team-*", "dying"])])
        let state = ReplicationState(namespaces: Self.namespaces, secrets: [
            Self.source, Self.stub("other", "x"), Self.stub("team-b", "y"), Self.stub("dying", "z"), Self.stub("platform", "w"),
        ])
        let plan = ReplicationPlanner.plan(policy, state)
        #expect(plan.writes.isEmpty)
        let reports = R.reports(plan)
        let q = "requests platform/regcred (dynsecret.io/replicate-from), refused: rule r: "
        #expect(reports.contains("other/x: Secret other/x \(q)the rule does not allow namespace other"))
        #expect(reports.contains("team-b/y: Secret team-b/y \(q)namespace team-b is excluded (excludeNamespaces)"))
        #expect(reports.contains("dying/z: Secret dying/z \(q)namespace dying is terminating"))
        #expect(reports.contains("platform/w: Secret platform/w \(q)namespace platform holds sources of the policy"))
        #expect(plan.actions.filter(\.refusesRequest).map(\.name).sorted() == ["w", "x", "y", "z"], "each is told to its requester")
    }

    @Test func oneOfTwoRulesServingTheSourceAllowsTheNamespace() {
        let policy = R.policy(Self.rule("a-teams", patterns: ["team-a"]), Self.rule("others", patterns: ["other"]))
        let state = ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, Self.stub("other", "x")])
        let plan = ReplicationPlanner.plan(policy, state)
        #expect(R.writes(plan) == ["update other/x"])
        #expect(plan.writes[0].rules == ["others"])
        #expect(R.reports(plan).isEmpty, "\(R.reports(plan))")
    }

    @Test func aStubOfAnotherTypeOrImmutableIsNeverReplaced() {
        let policy = R.policy(Self.rule())
        var frozen = Self.stub("team-a", "frozen")
        frozen.immutable = true
        let state = ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, Self.stub("team-a", "opaque", type: SecretType.opaque), frozen])
        let plan = ReplicationPlanner.plan(policy, state)
        #expect(plan.writes.isEmpty, "\(R.writes(plan))")
        #expect(R.reports(plan).contains("team-a/opaque: conflict: cannot adopt Secret team-a/opaque: type differs and it is not ours; left alone (request with a Secret of type kubernetes.io/dockerconfigjson)"))
        #expect(R.reports(plan).contains("team-a/frozen: conflict: cannot adopt Secret team-a/frozen: it is immutable and it is not ours; left alone (request with an object that is not immutable)"))
    }

    @Test func withdrawingTheRequestOrTheAllowanceFollowsPrune() async {
        let state = await R.converge(R.policy(Self.rule()), ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, Self.stub("team-a", "s")])).after
        var withdrawn = state
        let i = withdrawn.secrets.firstIndex { $0.metadata.name == "s" }!
        withdrawn.secrets[i].metadata.annotations[ReplicaMarkers.requestAnnotation] = nil
        let pruned = ReplicationPlanner.plan(R.policy(Self.rule()), withdrawn)
        #expect(R.writes(pruned) == ["delete team-a/s"])
        #expect(pruned.writes[0].reason == "prune: no longer targeted by the rule")
        // The rule no longer allows the namespace: the copy is revoked.
        #expect(R.writes(ReplicationPlanner.plan(R.policy(Self.rule(patterns: ["other"])), state)) == ["delete team-a/s"])
        // prune: false retains it.
        let kept = ReplicationPlanner.plan(R.policy(Self.rule(prune: false)), withdrawn)
        #expect(kept.writes.isEmpty && R.reports(kept) == ["team-a/s: no longer targeted; retained (prune: false)"])
    }

    @Test func createOnlyFillsOnceAndNeverAgain() async {
        let policy = R.policy(Self.rule(mode: .createOnly))
        let first = await R.converge(policy, ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, Self.stub("team-a", "s")]))
        #expect(R.writes(first.plan) == ["update team-a/s"])
        var state = first.after
        let i = state.secrets.firstIndex { $0.metadata.namespace == "platform" }!
        state.secrets[i].data[".dockerconfigjson"] = Array("{}".utf8)
        let plan = ReplicationPlanner.plan(policy, state)
        #expect(plan.writes.isEmpty)
        #expect(R.reports(plan) == ["team-a/s: replica differs from its source; not updated (mode: create-only)"])
    }

    @Test func requestsNobodyServesAreReportedOnlyWhenTheyConcernThisPolicy() {
        let push = R.rule("push", source: .init(namespace: "platform", name: "other-cred"), namespaces: ["team-b"])
        let policy = R.policy(Self.rule(), push)
        let state = ReplicationState(namespaces: Self.namespaces, secrets: [
            Self.source, R.secret("platform", "other-cred"),
            Self.stub("team-a", "bad", requests: "no-slash"), Self.stub("team-a", "push", requests: "platform/other-cred"),
            Self.stub("team-a", "elsewhere", requests: "vault/cred"),
        ])
        let plan = ReplicationPlanner.plan(policy, state)
        let reports = R.reports(plan).filter { $0.hasPrefix("team-a/") }
        #expect(reports == [
            #"team-a/bad: dynsecret.io/replicate-from: "no-slash" on Secret team-a/bad is not NAMESPACE/NAME; nothing copied"#,
            "team-a/push: Secret team-a/push requests platform/other-cred (dynsecret.io/replicate-from), but rule push does not take requests (targets.requested); nothing copied",
        ], "a request naming no source of this policy is another policy's")
        #expect(R.writes(plan) == ["create team-b/other-cred"])
    }

    @Test func anotherPolicysReplicaCannotBeTakenByARequest() {
        var theirs = R.replica(of: Self.source, in: "team-a", name: "s")
        theirs.metadata.annotations[ReplicaMarkers.ruleAnnotation] = "q/r"
        theirs.metadata.annotations[ReplicaMarkers.requestAnnotation] = "platform/regcred"
        let plan = ReplicationPlanner.plan(R.policy(Self.rule()), ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, theirs]))
        #expect(plan.writes.isEmpty)
        #expect(R.reports(plan) == ["team-a/s: conflict: Secret team-a/s is a replica of policy q; left alone (never adopted or overwritten)"])
    }

    @Test func configMapRequestsAreKindAware() async {
        let ca = ConfigMapReplicationTests.cm("platform", "regcred", ["ca.crt": "PEM"], binary: ["b": [0, 0xFF]])
        let policy = R.policy(Self.rule(source: .init(kind: .configMap, namespace: "platform", name: "regcred")))
        // A Secret asking for platform/regcred is not a request for the ConfigMap of that name.
        let cmStub = ConfigMapReplicationTests.cm("team-a", "ca", [:], annotations: [ReplicaMarkers.requestAnnotation: "platform/regcred"])
        let state = ReplicationState(namespaces: Self.namespaces, secrets: [Self.source, Self.stub("team-a", "s")], configMaps: [ca, cmStub])
        let (plan, _, after, again) = await R.converge(policy, state)
        #expect(R.writes(plan) == ["update team-a/ca"])
        #expect(plan.writes[0].objectKind == .configMap)
        let copy = after.configMaps.first { $0.metadata.name == "ca" }
        #expect(copy?.data == ca.data && copy?.binaryData == ca.binaryData)
        #expect(after.secret("team-a", "s")?.data == Self.stub("team-a", "s").data)
        #expect(again.writes.isEmpty)
    }

    @Test func aRequestedRuleWithASelectorSourceServesAnySelectedSource() async {
        let sel = ReplicationRule.Source(namespace: "platform", selector: LabelSelector(matchLabels: ["share": "pull"]))
        var shared = R.secret("platform", "shared", type: SecretType.opaque)
        shared.metadata.labels = ["share": "pull"]
        let policy = R.policy(Self.rule(source: sel))
        let state = ReplicationState(namespaces: Self.namespaces, secrets: [
            shared, Self.source, Self.stub("team-a", "mine", requests: "platform/shared", type: SecretType.opaque),
            Self.stub("team-a", "unselected", requests: "platform/regcred"),
        ])
        let (plan, _, after, _) = await R.converge(policy, state)
        #expect(R.writes(plan) == ["update team-a/mine"])
        #expect(after.secret("team-a", "mine")?.data == shared.data)
        #expect(after.secret("team-a", "unselected")?.data == Self.stub("team-a", "unselected").data)
    }

    @Test func policyFieldAndItsErrors() throws {
        func load(_ targets: String, extra: String = "") throws(ManifestError) -> ReplicationPolicy {
            try ReplicationPolicy.load(Array("""
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: p}
            spec:
              rules:
              - name: r
                source: {namespace: platform, name: regcred}
                targets: \(targets)
            \(extra)
            """.utf8), source: "policy.yaml")
        }
        let p = try load("{requested: true, namespacePatterns: [\"*\"]}")
        #expect(p.rules[0].targets.requested && p.requestedKinds == [.secret])
        #expect(try ReplicationPolicy.decode(p.json) == p, "the policy document keeps requested")
        #expect(try load("{namespaces: [a]}").requestedKinds.isEmpty)
        #expect(throws: ManifestError.self) { try load("{requested: true}") }
        do {
            _ = try load("{requested: true}")
        } catch {
            #expect(error.description.contains("spec.rules[0].targets.namespaces") && error.description.contains(#"namespacePatterns ("*" for every namespace)"#))
        }
        do {
            _ = try load("{requested: true, namespaces: [a]}", extra: "    targetName: x")
            Issue.record("targetName with requested must be refused")
        } catch {
            #expect(error.description.contains("spec.rules[0].targetName") && error.description.contains("takes the name of the object that requests it"))
        }
        do {
            _ = try load("{namespaces: [a]}", extra: "    copyAnnotations: [dynsecret.io/replicate-from]")
            Issue.record("copying the request annotation must be refused")
        } catch {
            #expect(error.description.contains("is never copied"))
        }
        do {
            _ = try load("{requested: \"true\", namespaces: [a]}")
            Issue.record("a non-boolean requested must be refused")
        } catch {
            #expect(error.description.contains("spec.rules[0].targets.requested"))
        }
    }
}
