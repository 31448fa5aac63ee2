import Testing
@testable import DynSecretCore

/// SplitMix64: a small seeded generator, so a failing case can be replayed from its seed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random clusters and policies, built to hit every branch of the planner: foreign Secrets, stale and drifted
/// replicas, replicas of other rules and policies, type changes, immutable objects, terminating namespaces,
/// selectors, globs, renames that collide, ServiceAccounts with and without the replica listed.
enum RandomCase {
    /// How the generator built a Secret: the safety oracle's notion of ownership, independent of the planner.
    enum Tag: Equatable {
        case foreign
        case replica(policy: String, rule: String, source: String, sourceUID: String?)
    }

    static let nsPool = ["src", "src2", "kube-system", "a", "b", "c", "team-1", "team-2", "team-3", "gpu-1", "gpu-2", "dev", "prod"]
    static let names = ["s0", "s1", "s2", "s3", "renamed"]
    static let types = ["Opaque", SecretType.dockerConfigJSON, SecretType.tls]

    static func make(seed: UInt64) -> (ReplicationPolicy, ReplicationState) {
        let (policy, state, _) = makeTagged(seed: seed)
        return (policy, state)
    }

    static func makeTagged(seed: UInt64) -> (ReplicationPolicy, ReplicationState, [String: Tag]) {
        var g = SeededRandom(seed: seed)
        func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &g) < p }
        func pick<T>(_ a: [T]) -> T { a.randomElement(using: &g)! }
        func data() -> [String: [UInt8]] {
            var d: [String: [UInt8]] = [:]
            for _ in 0..<Int.random(in: 0...2, using: &g) { d[pick(["k", "tls.crt", ".dockerconfigjson"])] = [UInt8.random(in: 0...3, using: &g)] }
            return d
        }

        var namespaces: [ReplicationNamespace] = []
        for n in nsPool where n == "src" || chance(0.75) {
            var labels: [String: String] = [:]
            if chance(0.5) { labels["env"] = pick(["dev", "prod"]) }
            if chance(0.4) { labels["gpu"] = "true" }
            namespaces.append(R.ns(n, labels, terminating: n != "src" && chance(0.1)))
        }
        let nsNames = namespaces.map(\.name)

        var secrets: [Secret] = []
        var tags: [String: Tag] = [:]
        var uid = 0
        func add(_ s: Secret, _ tag: Tag = .foreign) {
            guard !secrets.contains(where: { $0.metadata.namespace == s.metadata.namespace && $0.metadata.name == s.metadata.name }) else { return }
            var s = s
            uid += 1
            s.metadata.uid = "u\(uid)"
            s.metadata.resourceVersion = String(Int.random(in: 1...99, using: &g))
            secrets.append(s)
            tags[s.metadata.namespace! + "/" + s.metadata.name!] = tag
        }
        /// Marks `s` as a replica exactly as `tag` says.
        func mark(_ s: inout Secret, _ tag: Tag) {
            guard case .replica(let policy, let rule, let source, let sourceUID) = tag else { return }
            s.metadata.labels[ReplicaMarkers.managedByLabel] = "dynsecret"
            s.metadata.labels[ReplicaMarkers.replicaLabel] = "true"
            s.metadata.annotations[ReplicaMarkers.sourceAnnotation] = source
            s.metadata.annotations[ReplicaMarkers.sourceUIDAnnotation] = sourceUID
            s.metadata.annotations[ReplicaMarkers.ruleAnnotation] = policy + "/" + rule
            s.metadata.annotations[ReplicaMarkers.contentHashAnnotation] = ReplicaContentHash.of(s)
        }
        let ruleIDs = [("p", "r0"), ("p", "r1"), ("p", "r2"), ("p", "old"), ("other", "r0"), ("other", "r1")]
        for srcNS in ["src", "src2"] where nsNames.contains(srcNS) {
            for n in names.prefix(4) where chance(0.7) {
                var s = R.secret(srcNS, n, [:], type: pick(types), labels: chance(0.6) ? ["share": "yes", "team": "ml"] : ["share": "no"],
                                 annotations: chance(0.5) ? ["owner": "ops", ReplicaMarkers.lastApplied: "{}"] : [:])
                s.data = data()
                if chance(0.3) { s.stringData = ["sd": pick(["x", "y"])] }
                if chance(0.15) { s.immutable = true }
                // A former replica that is now (or could be) a named source.
                if chance(0.15) {
                    let (p, r) = pick(ruleIDs)
                    let tag = Tag.replica(policy: p, rule: r, source: "src/" + pick(names), sourceUID: chance(0.5) ? "u1" : nil)
                    mark(&s, tag)
                    add(s, tag)
                } else {
                    add(s)
                }
            }
            // A marked Secret in a source namespace that is not a source.
            if chance(0.3) {
                var s = R.secret(srcNS, "renamed", [:])
                s.data = data()
                let (p, r) = pick(ruleIDs)
                let tag = Tag.replica(policy: p, rule: r, source: "src/" + pick(names), sourceUID: nil)
                mark(&s, tag)
                add(s, tag)
            }
        }
        let sources = secrets
        for ns in nsNames where !ns.hasPrefix("src") {
            for n in names where chance(0.35) {
                var s = R.secret(ns, n, [:], type: pick(types))
                s.data = data()
                var tag = Tag.foreign
                switch Int.random(in: 0...8, using: &g) {
                case 0: break // foreign
                case 1, 2, 3, 7:
                    // A replica: of a random source (or a missing one), by a random rule of this or another policy,
                    // with the source's uid, another uid or none; possibly stale.
                    let src = sources.isEmpty ? R.secret("src", "s0") : pick(sources)
                    let (p, r) = pick(ruleIDs)
                    let sourceKey = chance(0.9) ? "\(src.metadata.namespace!)/\(src.metadata.name!)" : "src/gone"
                    let sourceUID: String? = chance(0.7) ? src.metadata.uid : (chance(0.5) ? "u999" : nil)
                    if chance(0.5) { s.type = src.effectiveType; s.data = src.mergedData }
                    if chance(0.2) { s.metadata.labels["extra"] = "kept" }
                    tag = .replica(policy: p, rule: r, source: sourceKey, sourceUID: sourceUID)
                    mark(&s, tag)
                case 4:
                    // Only one of the two replica labels: not ours.
                    s.metadata.labels = [ReplicaMarkers.managedByLabel: "dynsecret"]
                case 5:
                    s.metadata.labels = [ReplicaMarkers.replicaLabel: "true", ReplicaMarkers.managedByLabel: "someone-else"]
                default:
                    // Both labels, no rule annotation (sometimes a source annotation): not ours.
                    s.metadata.labels = [ReplicaMarkers.managedByLabel: "dynsecret", ReplicaMarkers.replicaLabel: "true"]
                    if chance(0.5), let src = sources.first { s.metadata.annotations[ReplicaMarkers.sourceAnnotation] = "\(src.metadata.namespace!)/\(src.metadata.name!)" }
                }
                if chance(0.15) { s.stringData = ["sd": pick(["x", "z"])] }
                if chance(0.15) { s.immutable = true }
                add(s, tag)
            }
        }

        var serviceAccounts: [ServiceAccount] = []
        for ns in nsNames where chance(0.6) {
            serviceAccounts.append(R.sa(ns, "default", Array(names.filter { _ in chance(0.2) }) + (chance(0.3) ? ["unrelated"] : [])))
            if chance(0.3) { serviceAccounts.append(R.sa(ns, "runner")) }
        }

        var rules: [ReplicationRule] = []
        for i in 0..<Int.random(in: 1...3, using: &g) {
            let srcNS = chance(0.8) ? "src" : "src2"
            let bySelector = chance(0.3)
            let source: ReplicationRule.Source = bySelector
                ? .init(namespace: srcNS, selector: LabelSelector(matchLabels: ["share": "yes"]))
                : .init(namespace: srcNS, name: pick(Array(names.prefix(4))))
            rules.append(R.rule(
                "r\(i)", source: source,
                namespaces: nsPool.filter { _ in chance(0.2) },
                patterns: chance(0.5) ? [pick(["team-*", "*", "gpu-?", "[a-c]"])] : [],
                selector: chance(0.4) ? LabelSelector(matchLabels: chance(0.5) ? ["gpu": "true"] : [:], matchExpressions: chance(0.5) ? [.init(key: "env", op: pick(["In", "NotIn"]), values: ["prod"])] : []) : nil,
                exclude: chance(0.3) ? [pick(nsPool)] : [],
                targetName: !bySelector && chance(0.3) ? pick(names) : nil,
                mode: chance(0.2) ? .createOnly : .sync,
                onConflict: pick([.skip, .skip, .adopt, .overwrite]),
                prune: chance(0.7),
                onSourceDelete: chance(0.5) ? .retain : .delete,
                serviceAccounts: chance(0.5) ? Array(["default", "runner"].prefix(Int.random(in: 1...2, using: &g))) : [],
                copyLabels: chance(0.5) ? ["team"] : [],
                copyAnnotations: chance(0.5) ? ["owner"] : []
            ))
        }
        var policy = ReplicationPolicy(name: "p", rules: rules)
        if chance(0.2) { policy.excludeNamespaces = [] }
        return (policy, ReplicationState(namespaces: namespaces.shuffled(using: &g), secrets: secrets.shuffled(using: &g), serviceAccounts: serviceAccounts), tags)
    }

    /// Which rules want to write each key, computed from the policy's documented semantics (not from the plan).
    static func claims(_ policy: ReplicationPolicy, _ state: ReplicationState) -> [String: Set<String>] {
        let sourceNamespaces = Set(policy.rules.map(\.source.namespace))
        var out: [String: Set<String>] = [:]
        for rule in policy.rules {
            var names: [String] = []
            if let n = rule.source.name {
                if state.secret(rule.source.namespace, n) != nil { names = [rule.targetName ?? n] }
            } else if let sel = rule.source.selector {
                names = state.secrets.filter {
                    $0.metadata.namespace == rule.source.namespace && sel.matches($0.metadata.labels)
                        && !($0.metadata.labels[ReplicaMarkers.managedByLabel] == "dynsecret" && $0.metadata.labels[ReplicaMarkers.replicaLabel] == "true")
                        && !["kubernetes.io/service-account-token", "helm.sh/release.v1"].contains($0.effectiveType)
                }.map { $0.metadata.name! }
            }
            for ns in state.namespaces where !ns.terminating {
                let chosen = rule.targets.namespaces.contains(ns.name)
                    || rule.targets.namespacePatterns.contains { NamespaceGlob.matches($0, ns.name) }
                    || rule.targets.namespaceSelector?.matches(ns.labels) == true
                guard chosen, !sourceNamespaces.contains(ns.name), !policy.excludeNamespaces.contains(ns.name),
                      !rule.targets.excludeNamespaces.contains(ns.name) else { continue }
                for n in names { out[ns.name + "/" + n, default: []].insert(rule.name) }
            }
        }
        return out
    }
}

@Suite struct ReplicationPropertyTests {
    static let cases: UInt64 = 2_000

    /// Applying a plan and planning again yields no writes; the plan also applies cleanly against the API rules.
    @Test func idempotence() async {
        var totalWrites = 0
        for seed in 1...Self.cases {
            let (policy, state) = RandomCase.make(seed: seed)
            let (plan, result, _, again) = await R.converge(policy, state)
            totalWrites += plan.writes.count
            #expect(result.failures.isEmpty, "seed \(seed): \(result.failures.map { "\($0.action.kind) \($0.action.namespace)/\($0.action.name): \($0.message)" })")
            #expect(again.writes.isEmpty, "seed \(seed): second plan writes \(again.writes.map { "\($0.kind) \($0.namespace)/\($0.name) [\($0.reason)]" })")
            var shuffled = state
            var g = SeededRandom(seed: seed ^ 0xA5A5)
            shuffled.namespaces.shuffle(using: &g)
            shuffled.secrets.shuffle(using: &g)
            shuffled.serviceAccounts.shuffle(using: &g)
            #expect(ReplicationPlanner.plan(policy, shuffled) == plan, "seed \(seed): plan depends on input order")
            if !again.writes.isEmpty { break }
        }
        // The generator must produce real work, or the property says nothing.
        #expect(totalWrites > Int(Self.cases))
    }

    /// No update or delete ever targets a Secret the generator did not build as a replica of this policy's rule and
    /// source, unless its rule says adopt or overwrite (and never another policy's replica); prune deletes only
    /// provable replicas; every update and delete carries the object's uid and resourceVersion; nothing is written
    /// into an excluded, terminating or source namespace, or at a target two rules claim. Ownership and contested
    /// targets come from how the case was generated, not from the planner.
    @Test func safety() {
        var kinds: [ReplicationAction.Kind: Int] = [:]
        var unownedTouched = 0, pruned = 0
        for seed in 1...Self.cases {
            let (policy, state, tags) = RandomCase.makeTagged(seed: seed)
            let plan = ReplicationPlanner.plan(policy, state)
            let contested = Set(RandomCase.claims(policy, state).filter { $0.value.count > 1 }.keys)
            let sourceNamespaces = Set(policy.rules.map(\.source.namespace))
            let ruleNames = Set(policy.rules.map(\.name))
            let creates = Set(plan.writes.filter { $0.kind == .create }.map { "\($0.namespace)/\($0.name)" })
            for a in plan.writes {
                kinds[a.kind, default: 0] += 1
                let rule = policy.rules.first { $0.name == a.rules[0] }!
                if a.kind == .patchServiceAccount { continue }
                let key = "\(a.namespace)/\(a.name)"
                #expect(a.rules.count == 1, "seed \(seed)")
                #expect(!contested.contains(key), "seed \(seed): write to contested target \(key)")
                #expect(!sourceNamespaces.contains(a.namespace), "seed \(seed): \(a.kind) in source namespace \(key)")
                let ns = state.namespaces.first { $0.name == a.namespace }
                if a.kind != .delete {
                    #expect(ns?.terminating == false, "seed \(seed): write into terminating or missing namespace \(a.namespace)")
                    #expect(!policy.excludeNamespaces.contains(a.namespace) && !rule.targets.excludeNamespaces.contains(a.namespace), "seed \(seed)")
                }
                guard a.kind == .update || a.kind == .delete else { continue }
                guard let existing = state.secret(a.namespace, a.name) else {
                    Issue.record("seed \(seed): \(a.kind) of a Secret that does not exist")
                    continue
                }
                #expect(a.precondition == ReplicationPrecondition(uid: existing.metadata.uid, resourceVersion: existing.metadata.resourceVersion), "seed \(seed)")
                let tag = tags[key] ?? .foreign
                if case .replica(let p, _, _, _) = tag, p != policy.name {
                    Issue.record("seed \(seed): \(a.kind) of \(key), a replica of policy \(p)")
                }
                if a.kind == .update || creates.contains(key) {
                    // Reconcile: ours means built as a replica of this rule's source by a rule of this policy.
                    let expectedSource = rule.source.name.map { rule.source.namespace + "/" + $0 } ?? rule.source.namespace + "/" + a.name
                    var ours = false
                    if case .replica(let p, let r, let src, _) = tag { ours = p == policy.name && ruleNames.contains(r) && src == expectedSource }
                    if !ours {
                        unownedTouched += 1
                        #expect(rule.onConflict == .adopt || rule.onConflict == .overwrite, "seed \(seed): \(a.kind) of unowned \(key)")
                        #expect(rule.mode == .sync, "seed \(seed)")
                        if a.kind == .delete { #expect(rule.onConflict == .overwrite, "seed \(seed): delete of an unowned Secret under adopt") }
                    }
                } else {
                    // Prune: only a provable replica of this rule.
                    pruned += 1
                    guard case .replica(let p, let r, let src, let uid) = tag, p == policy.name, r == rule.name else {
                        Issue.record("seed \(seed): prune of \(key), not built as a replica of rule \(rule.name)")
                        continue
                    }
                    let srcName = String(src.split(separator: "/", maxSplits: 1).last ?? "")
                    if let n = rule.source.name {
                        #expect(src == rule.source.namespace + "/" + n, "seed \(seed): prune of \(key), replica of \(src)")
                    } else {
                        #expect(src.hasPrefix(rule.source.namespace + "/"), "seed \(seed): prune of \(key), replica of \(src)")
                    }
                    #expect(a.name == (rule.targetName ?? srcName), "seed \(seed): prune of renamed \(key)")
                    if let live = state.secret(String(src.prefix { $0 != "/" }), srcName), let uid {
                        #expect(live.metadata.uid == uid, "seed \(seed): prune of \(key) whose source-uid is not its source's")
                    }
                }
            }
        }
        // Every kind of write occurs, including adopt/overwrite of foreign objects and prunes, so the checks above ran.
        #expect(ReplicationAction.Kind.allCases.filter { $0 != .report }.allSatisfy { (kinds[$0] ?? 0) > 50 }, "\(kinds)")
        #expect(unownedTouched > 50 && pruned > 20, "\(unownedTouched) \(pruned)")
    }
}
