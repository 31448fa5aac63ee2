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
    static let nsPool = ["src", "src2", "kube-system", "a", "b", "c", "team-1", "team-2", "team-3", "gpu-1", "gpu-2", "dev", "prod"]
    static let names = ["s0", "s1", "s2", "s3", "renamed"]
    static let types = ["Opaque", SecretType.dockerConfigJSON, SecretType.tls]

    static func make(seed: UInt64) -> (ReplicationPolicy, ReplicationState) {
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
        var uid = 0
        func add(_ s: Secret) {
            guard !secrets.contains(where: { $0.metadata.namespace == s.metadata.namespace && $0.metadata.name == s.metadata.name }) else { return }
            var s = s
            uid += 1
            s.metadata.uid = "u\(uid)"
            s.metadata.resourceVersion = String(Int.random(in: 1...99, using: &g))
            secrets.append(s)
        }
        for srcNS in ["src", "src2"] where nsNames.contains(srcNS) {
            for n in names.prefix(4) where chance(0.7) {
                var s = R.secret(srcNS, n, [:], type: pick(types), labels: chance(0.6) ? ["share": "yes", "team": "ml"] : ["share": "no"],
                                 annotations: chance(0.5) ? ["owner": "ops", ReplicaMarkers.lastApplied: "{}"] : [:])
                s.data = data()
                if chance(0.3) { s.stringData = ["sd": pick(["x", "y"])] }
                if chance(0.15) { s.immutable = true }
                add(s)
            }
        }
        let sources = secrets
        for ns in nsNames where !ns.hasPrefix("src") {
            for n in names where chance(0.35) {
                var s = R.secret(ns, n, [:], type: pick(types))
                s.data = data()
                switch Int.random(in: 0...5, using: &g) {
                case 0: break // foreign
                case 1, 2, 3:
                    // A replica: of a random source, by a random rule of this or another policy, possibly stale.
                    let src = sources.isEmpty ? R.secret("src", "s0") : pick(sources)
                    s.metadata.labels = [ReplicaMarkers.managedByLabel: "dynsecret", ReplicaMarkers.replicaLabel: "true"]
                    if chance(0.2) { s.metadata.labels["extra"] = "kept" }
                    s.metadata.annotations = [
                        ReplicaMarkers.sourceAnnotation: chance(0.9) ? "\(src.metadata.namespace!)/\(src.metadata.name!)" : "src/gone",
                        ReplicaMarkers.ruleAnnotation: pick(["p/r0", "p/r1", "p/r2", "p/old", "other/r0"]),
                        ReplicaMarkers.contentHashAnnotation: ReplicaContentHash.of(src),
                    ]
                    if chance(0.5) { s.type = src.effectiveType; s.data = src.mergedData }
                case 4:
                    // Only one of the two replica labels: not ours.
                    s.metadata.labels = [ReplicaMarkers.managedByLabel: "dynsecret"]
                default:
                    s.metadata.labels = [ReplicaMarkers.replicaLabel: "true", ReplicaMarkers.managedByLabel: "someone-else"]
                }
                if chance(0.15) { s.immutable = true }
                add(s)
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
        return (policy, ReplicationState(namespaces: namespaces.shuffled(using: &g), secrets: secrets.shuffled(using: &g), serviceAccounts: serviceAccounts))
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

    /// No update or delete ever targets a Secret without our markers unless its rule says adopt or overwrite; every
    /// update and delete carries the object's uid and resourceVersion; nothing is written into an excluded,
    /// terminating or source namespace, or at a target two rules contest.
    @Test func safety() {
        var kinds: [ReplicationAction.Kind: Int] = [:]
        var unownedTouched = 0
        for seed in 1...Self.cases {
            let (policy, state) = RandomCase.make(seed: seed)
            let plan = ReplicationPlanner.plan(policy, state)
            let contested = Set(plan.actions.filter { $0.kind == .report && $0.rules.count > 1 }.map { "\($0.namespace)/\($0.name)" })
            for a in plan.writes {
                kinds[a.kind, default: 0] += 1
                let rule = policy.rules.first { $0.name == a.rules[0] }!
                if a.kind == .patchServiceAccount { continue }
                #expect(a.rules.count == 1, "seed \(seed)")
                #expect(!contested.contains("\(a.namespace)/\(a.name)"), "seed \(seed): write to a contested target")
                let ns = state.namespaces.first { $0.name == a.namespace }
                if a.kind != .delete {
                    #expect(ns?.terminating == false, "seed \(seed): write into terminating or missing namespace \(a.namespace)")
                    #expect(!policy.excludeNamespaces.contains(a.namespace) && !rule.targets.excludeNamespaces.contains(a.namespace), "seed \(seed)")
                    #expect(!policy.rules.contains { $0.source.namespace == a.namespace && $0.name == rule.name }, "seed \(seed)")
                }
                guard a.kind == .update || a.kind == .delete else { continue }
                guard let existing = state.secret(a.namespace, a.name) else {
                    Issue.record("seed \(seed): \(a.kind) of a Secret that does not exist")
                    continue
                }
                #expect(a.precondition == ReplicationPrecondition(uid: existing.metadata.uid, resourceVersion: existing.metadata.resourceVersion), "seed \(seed)")
                let ours = ReplicaMarkers.isOwned(existing.metadata) && existing.metadata.annotations[ReplicaMarkers.ruleAnnotation]?.hasPrefix("p/") == true
                if !ours {
                    unownedTouched += 1
                    #expect(rule.onConflict == .adopt || rule.onConflict == .overwrite, "seed \(seed): \(a.kind) of unowned \(a.namespace)/\(a.name)")
                    #expect(rule.mode == .sync, "seed \(seed)")
                    if a.kind == .delete { #expect(rule.onConflict == .overwrite, "seed \(seed): delete of an unowned Secret under adopt") }
                }
            }
        }
        // Every kind of write occurs, including adopt/overwrite of foreign objects, so the checks above ran.
        #expect(ReplicationAction.Kind.allCases.filter { $0 != .report }.allSatisfy { (kinds[$0] ?? 0) > 50 }, "\(kinds)")
        #expect(unownedTouched > 50)
    }
}
