@testable import DynSecretCore
import Testing

/// The compact forms the planner reads (`TargetObject`, `SourceObject`) and the interner behind them.
@Suite struct ReplicationObjectsTests {
    static let source = R.secret("platform", "regcred", ["k": "v1"])
    static let policy = R.policy(R.rule(namespaces: ["a"]))

    /// The planner sees the same thing from a whole Secret and from its compact form.
    @Test func compactTargetsPlanLikeWholeSecrets() {
        let replica = R.replica(of: Self.source, in: "a")
        var drifted = replica
        drifted.data["k"] = Array("edited".utf8)
        var extraKey = replica
        extraKey.data["added"] = Array("x".utf8)
        for target in [replica, drifted, extraKey] {
            let whole = ReplicationPlanner.plan(Self.policy, ReplicationState(namespaces: [R.ns("a")], secrets: [Self.source, target]))
            let compact = ReplicationPlanner.plan(Self.policy, ReplicationState(namespaces: [R.ns("a")], sources: [SourceObject(Self.source)],
                                                                                 targets: [TargetObject(target)]))
            #expect(R.writes(whole) == R.writes(compact))
            #expect(whole.actions.map(\.reason) == compact.actions.map(\.reason))
        }
    }

    /// Data edited by hand, with the content-hash annotation left as it was, is drift: the hash is of what is stored.
    @Test func driftIsTheStoredContentNotTheAnnotation() {
        var edited = R.replica(of: Self.source, in: "a")
        edited.data["k"] = Array("edited-by-hand".utf8)
        let target = TargetObject(edited)
        #expect(target.annotations[ReplicaMarkers.contentHashAnnotation] == ReplicaContentHash.of(Self.source))
        #expect(target.contentHash != ReplicaContentHash.of(Self.source))
        let plan = ReplicationPlanner.plan(Self.policy, ReplicationState(namespaces: [R.ns("a")], sources: [SourceObject(Self.source)], targets: [target]))
        #expect(R.writes(plan) == ["update a/regcred"])
        #expect(plan.writes.first?.previous == target)
        #expect(plan.writes.first?.secret?.data == Self.source.data)
    }

    /// No data is kept, and last-applied-configuration (which can quote the data) keeps only its key.
    @Test func targetsKeepNoData() {
        var s = R.replica(of: Self.source, in: "a")
        s.metadata.annotations[ReplicaMarkers.lastApplied] = #"{"data":{"k":"djE="}}"#
        let t = TargetObject(s)
        #expect(t.annotations[ReplicaMarkers.lastApplied] == "")
        #expect(t.dataKeys == ["k"] && t.dataSize == 2)
        #expect(!String(describing: t).contains("djE="))
    }

    /// Repeated strings and maps come back as one shared value; past its limit the interner starts afresh.
    @Test func internerSharesAndIsBounded() {
        var interner = ReplicationInterner(limit: 4)
        let a = String(repeating: "x", count: 40)
        let b = String(repeating: "x", count: 40)
        let first = interner.intern(a)
        let second = interner.intern(b)
        #expect(first == second)
        #expect(first.utf8.withContiguousStorageIfAvailable { $0.baseAddress } == second.utf8.withContiguousStorageIfAvailable { $0.baseAddress })
        for i in 0..<50 { _ = interner.intern(String(repeating: "y", count: 20) + "\(i)") }
        #expect(interner.count <= 4 + 1)
        let labels = ["app.kubernetes.io/managed-by": "dynsecret", "dynsecret.io/replica": "true"]
        var i2 = ReplicationInterner()
        let m1 = i2.intern(labels), m2 = i2.intern(labels)
        #expect(m1 == m2 && i2.count >= 1)
    }

    /// An update through the in-memory cluster sets the replica's fields and keeps what it gained elsewhere.
    @Test func updateKeepsOtherFields() async throws {
        var replica = R.replica(of: Self.source, in: "a")
        replica.metadata.finalizers = ["example.com/keep"]
        replica.metadata.labels["team"] = "x"
        replica.metadata.annotations[ReplicaMarkers.lastApplied] = "{}"
        var changed = Self.source
        changed.data = ["k": Array("v2".utf8)]
        let state = ReplicationState(namespaces: [R.ns("a")], secrets: [changed, replica])
        let result = await R.converge(Self.policy, state)
        #expect(R.writes(result.plan) == ["update a/regcred"])
        #expect(result.result.failures.isEmpty)
        let after = try #require(result.after.secrets.first { $0.metadata.namespace == "a" })
        #expect(after.data == changed.data)
        #expect(after.metadata.finalizers == ["example.com/keep"] && after.metadata.labels["team"] == "x")
        #expect(after.metadata.annotations[ReplicaMarkers.lastApplied] == "{}")
        #expect(result.again.writes.isEmpty)
    }

    /// Read straight from the API's JSON, a target is what the `Secret` path makes of the same object; what the
    /// strict decoder refuses (a non-string label, bad base64, a non-boolean `immutable`) the direct reader refuses.
    @Test func apiObjectsReadAsTheSecretPathReadsThem() throws {
        var s = R.replica(of: Self.source, in: "a")
        s.metadata.annotations[ReplicaMarkers.lastApplied] = "{}"
        s.metadata.finalizers = ["x"]
        s.immutable = true
        for secret in [s, R.secret("b", "plain", ["k": "v", "other": ""], type: ""), R.secret("c", "empty", [:])] {
            var interner = ReplicationInterner()
            let direct = try #require(TargetObject(apiObject: secret.json, interner: &interner))
            #expect(direct == TargetObject(secret))
        }
        let good = s.json
        func replacing(_ path: [String], with value: JSONValue) -> JSONValue {
            func go(_ v: JSONValue, _ p: ArraySlice<String>) -> JSONValue {
                guard let k = p.first, case .object(var o) = v else { return value }
                o[k] = go(o[k] ?? .null, p.dropFirst())
                return .object(o)
            }
            return go(good, path[...])
        }
        for (path, value) in [(["metadata", "labels", "x"], JSONValue.number("1")), (["data", "k"], .string("not base64!")),
                              (["immutable"], .string("yes"))] {
            var interner = ReplicationInterner()
            let bad = replacing(path, with: value)
            #expect(TargetObject(apiObject: bad, interner: &interner) == nil, "\(path)")
            #expect(throws: (any Error).self, "\(path)") { _ = try Secret.decode(bad) }
        }
    }
}
