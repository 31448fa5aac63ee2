import Testing
@testable import DynSecretCore

/// ConfigMaps go through the same planner and applier as Secrets: every rule feature, kind-aware identity.
@Suite struct ConfigMapReplicationTests {
    static func cm(_ namespace: String, _ name: String, _ data: [String: String] = ["ca.crt": "PEM"], binary: [String: [UInt8]] = [:],
                   labels: [String: String] = [:], annotations: [String: String] = [:], rv: String = "1", immutable: Bool? = nil) -> ConfigMap {
        var meta = ObjectMeta(name: name, namespace: namespace, labels: labels, annotations: annotations)
        meta.uid = "uid-cm-\(namespace)-\(name)"
        meta.resourceVersion = rv
        return ConfigMap(metadata: meta, data: data, binaryData: binary, immutable: immutable)
    }

    static let source = cm("platform", "ca-bundle", ["ca.crt": "-----BEGIN CERTIFICATE-----"], binary: ["trust.p12": [0, 0xFF, 0x80, 7]])
    static let namespaces = [R.ns("platform"), R.ns("a"), R.ns("b"), R.ns("c", terminating: true)]

    static func rule(_ name: String = "ca", namespaces: [String] = ["a", "b"], onConflict: ReplicationRule.OnConflict = .skip,
                     onSourceDelete: ReplicationRule.OnSourceDelete = .retain, prune: Bool = true) -> ReplicationRule {
        R.rule(name, source: .init(kind: .configMap, namespace: "platform", name: "ca-bundle"), namespaces: namespaces,
               onConflict: onConflict, prune: prune, onSourceDelete: onSourceDelete)
    }

    @Test func createsConvergesAndRoundTripsBinaryData() async {
        let policy = R.policy(Self.rule())
        let state = ReplicationState(namespaces: Self.namespaces, configMaps: [Self.source])
        let (plan, result, after, again) = await R.converge(policy, state)
        #expect(R.writes(plan) == ["create a/ca-bundle", "create b/ca-bundle"])
        #expect(plan.writes.allSatisfy { $0.objectKind == .configMap && $0.object?.configMap != nil })
        #expect(result.failures.isEmpty && result.applied == 2)
        #expect(again.writes.isEmpty, "\(R.writes(again))")
        let copy = after.configMaps.first { $0.metadata.namespace == "a" }!
        #expect(copy.data == Self.source.data && copy.binaryData == Self.source.binaryData)
        #expect(copy.metadata.labels[ReplicaMarkers.replicaLabel] == "true")
        #expect(copy.metadata.annotations[ReplicaMarkers.contentHashAnnotation] == ReplicaContentHash.of(Self.source))
        #expect(after.secrets.isEmpty, "a ConfigMap rule writes no Secret")
    }

    @Test func changeOfBinaryDataOrDataIsAnUpdate() async {
        let policy = R.policy(Self.rule(namespaces: ["a"]))
        let first = await R.converge(policy, ReplicationState(namespaces: Self.namespaces, configMaps: [Self.source]))
        var state = first.after
        let i = state.configMaps.firstIndex { $0.metadata.namespace == "platform" }!
        state.configMaps[i].binaryData["trust.p12"] = [1, 2, 3]
        let plan = ReplicationPlanner.plan(policy, state)
        #expect(R.writes(plan) == ["update a/ca-bundle"])
        #expect(plan.writes[0].reason == "content differs from source")
        // A key moved from data to binaryData with the same bytes is a different ConfigMap.
        var moved = first.after
        let j = moved.configMaps.firstIndex { $0.metadata.namespace == "a" }!
        moved.configMaps[j].binaryData["ca.crt"] = Array(moved.configMaps[j].data["ca.crt"]!.utf8)
        moved.configMaps[j].data["ca.crt"] = nil
        #expect(R.writes(ReplicationPlanner.plan(policy, moved)) == ["update a/ca-bundle"])
    }

    @Test func handEditedReplicaIsDriftWithTheCompactCache() {
        let policy = R.policy(Self.rule(namespaces: ["a"]))
        let plan = ReplicationPlanner.plan(policy, ReplicationState(namespaces: Self.namespaces, configMaps: [Self.source]))
        var edited = plan.replicas[0].configMap!
        edited.data["ca.crt"] = "tampered"
        edited.metadata.uid = "u1"
        edited.metadata.resourceVersion = "9"
        // Only the compact form is in the state, as a controller caches it: the hash of what is stored.
        let state = ReplicationState(namespaces: Self.namespaces, sources: [SourceObject(Self.source)], targets: [TargetObject(edited)])
        let again = ReplicationPlanner.plan(policy, state)
        #expect(R.writes(again) == ["update a/ca-bundle"])
        #expect(again.writes[0].precondition == ReplicationPrecondition(uid: "u1", resourceVersion: "9"))
    }

    @Test func foreignConfigMapIsLeftAloneAndSecretOfSameNameIsNotItsReplica() async {
        let foreign = Self.cm("a", "ca-bundle", ["ca.crt": "theirs"])
        // A Secret named like the ConfigMap is another object: neither a conflict nor pruned.
        let secretTwin = R.replica(of: R.secret("platform", "ca-bundle"), in: "b", rule: "ca")
        let policy = R.policy(Self.rule())
        let state = ReplicationState(namespaces: Self.namespaces, secrets: [secretTwin], configMaps: [Self.source, foreign])
        let plan = ReplicationPlanner.plan(policy, state)
        #expect(R.writes(plan) == ["create b/ca-bundle"])
        #expect(plan.writes[0].objectKind == .configMap)
        #expect(R.reports(plan).contains("a/ca-bundle: conflict: ConfigMap a/ca-bundle exists and is not managed by dynsecret; left alone (onConflict: skip)"))
        #expect(R.reports(plan).contains { $0.hasPrefix("b/ca-bundle: marked as a replica of rule p/ca but it is a Secret and the rule replicates ConfigMaps") })
        // adopt: one update of the foreign object, data from the source, precondition on its version.
        let adopt = ReplicationPlanner.plan(R.policy(Self.rule(onConflict: .adopt)), state)
        #expect(R.writes(adopt) == ["update a/ca-bundle", "create b/ca-bundle"])
        #expect(adopt.writes[0].reason == "adopt: content differs from source")
    }

    @Test func pruneAndSourceDeletion() async {
        let first = await R.converge(R.policy(Self.rule()), ReplicationState(namespaces: Self.namespaces, configMaps: [Self.source]))
        let narrowed = ReplicationPlanner.plan(R.policy(Self.rule(namespaces: ["a"])), first.after)
        #expect(R.writes(narrowed) == ["delete b/ca-bundle"])
        #expect(narrowed.writes[0].objectKind == .configMap)
        var gone = first.after
        gone.configMaps.removeAll { $0.metadata.namespace == "platform" }
        #expect(R.writes(ReplicationPlanner.plan(R.policy(Self.rule()), gone)).isEmpty)
        let deleting = ReplicationPlanner.plan(R.policy(Self.rule(onSourceDelete: .delete)), gone)
        #expect(R.writes(deleting) == ["delete a/ca-bundle", "delete b/ca-bundle"])
        let result = await R.converge(R.policy(Self.rule(onSourceDelete: .delete)), gone)
        #expect(result.after.configMaps.isEmpty && result.result.failures.isEmpty)
    }

    @Test func immutableReplicaIsReplaced() async {
        var src = Self.source
        src.immutable = true
        let first = await R.converge(R.policy(Self.rule(namespaces: ["a"])), ReplicationState(namespaces: Self.namespaces, configMaps: [src]))
        var state = first.after
        let i = state.configMaps.firstIndex { $0.metadata.namespace == "platform" }!
        state.configMaps[i].data["ca.crt"] = "rotated"
        let (plan, result, after, again) = await R.converge(R.policy(Self.rule(namespaces: ["a"])), state)
        #expect(R.writes(plan) == ["delete a/ca-bundle", "create a/ca-bundle"])
        #expect(result.failures.isEmpty && again.writes.isEmpty)
        #expect(after.configMaps.first { $0.metadata.namespace == "a" }?.data["ca.crt"] == "rotated")
    }

    @Test func policyDecodesKindAndRefusesServiceAccountsForConfigMaps() throws {
        func policy(_ rule: String) throws(ManifestError) -> ReplicationPolicy {
            try ReplicationPolicy.load(Array("""
                apiVersion: dynsecret.io/v1alpha1
                kind: ReplicationPolicy
                metadata: {name: p}
                spec:
                  rules:
                  - name: r
                    \(rule)
                    targets: {namespaces: [a]}
                """.utf8), source: "p.yaml")
        }
        #expect(try policy("source: {kind: ConfigMap, namespace: platform, name: ca}").rules[0].source.kind == .configMap)
        #expect(try policy("source: {namespace: platform, name: ca}").rules[0].source.kind == .secret)
        do {
            _ = try policy("source: {kind: Deployment, namespace: platform, name: ca}")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("spec.rules[0].source.kind") && error.description.contains("\"Secret\", \"ConfigMap\""), "\(error)")
        }
        do {
            _ = try policy("source: {kind: ConfigMap, namespace: platform, name: ca}\n    serviceAccounts: [default]")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("spec.rules[0].serviceAccounts"), "\(error)")
        }
    }

    @Test func apiServerRules() {
        var c = Self.cm("a", "x", ["ok": "1", "bad key": "2", "dup": "3"], binary: ["dup": [1]])
        let texts = ConfigMapAPIRules.violations(c).map(\.text)
        #expect(texts.contains("data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData"))
        #expect(texts.contains { $0.hasPrefix("data[bad key]: Invalid value: \"bad key\": a valid config key must consist of") })
        c = Self.cm("a", "x", ["big": String(repeating: "x", count: 700_000)], binary: ["b": [UInt8](repeating: 1, count: 400_000)])
        #expect(ConfigMapAPIRules.violations(c).map(\.text) == ["[]: Too long: may not be more than 1048576 bytes"])
        let old = Self.cm("a", "x", immutable: true)
        var changed = old
        changed.data["ca.crt"] = "new"
        #expect(ConfigMapAPIRules.violations(changed, old: old).map(\.text) == ["data: Forbidden: field is immutable when `immutable` is set"])
        #expect(ConfigMapAPIRules.violations(old, old: old).isEmpty)
    }

    @Test func compactFormFromAPIJSONMatchesWholeObject() throws {
        let json = Self.source.json
        var interner = ReplicationInterner()
        let compact = try #require(TargetObject(apiObject: json, kind: .configMap, interner: &interner))
        #expect(compact == TargetObject(Self.source))
        #expect(compact.binaryDataKeys == ["trust.p12"] && compact.dataKeys == ["ca.crt"] && compact.type.isEmpty)
        // The Secret and ConfigMap hashes of the same bytes differ: a kind change is never "in sync".
        #expect(ReplicaContentHash.of(Self.source) != ReplicaContentHash.of(type: "Opaque", data: ["ca.crt": Array("-----BEGIN CERTIFICATE-----".utf8)]))
        #expect(try ConfigMap.decode(json).configMap == Self.source)
    }
}
