import Foundation
import Testing
@testable import DynSecretCore

@Suite struct ReplicationPolicyTests {
    static let good = """
        apiVersion: dynsecret.io/v1alpha1
        kind: ReplicationPolicy
        metadata:
          name: pull-secrets
        spec:
          rules:
          - name: registry
            source:
              namespace: platform
              name: regcred
            targets:
              namespaces: [team-a]
              namespacePatterns: ["team-*"]
              namespaceSelector:
                matchLabels:
                  inference: enabled
                matchExpressions:
                - key: tier
                  operator: In
                  values: [gpu]
              excludeNamespaces: [team-x]
            targetName: registry-creds
            mode: create-only
            onConflict: adopt
            prune: false
            onSourceDelete: delete
            serviceAccounts: [default, runner]
            copyLabels: [team]
            copyAnnotations: [owner]
        """

    @Test func decodesAllFields() throws {
        let p = try ReplicationPolicy.load(Array(Self.good.utf8), source: "p.yaml")
        #expect(p.name == "pull-secrets")
        #expect(p.excludeNamespaces == ["kube-system", "kube-public", "kube-node-lease"])
        let r = try #require(p.rules.first)
        #expect(r.source == .init(namespace: "platform", name: "regcred"))
        #expect(r.targets.namespaces == ["team-a"])
        #expect(r.targets.namespacePatterns == ["team-*"])
        #expect(r.targets.namespaceSelector == LabelSelector(matchLabels: ["inference": "enabled"], matchExpressions: [.init(key: "tier", op: "In", values: ["gpu"])]))
        #expect(r.targets.excludeNamespaces == ["team-x"])
        #expect(r.targetName == "registry-creds")
        #expect(r.mode == .createOnly && r.onConflict == .adopt && r.prune == false && r.onSourceDelete == .delete)
        #expect(r.serviceAccounts == ["default", "runner"] && r.copyLabels == ["team"] && r.copyAnnotations == ["owner"])
    }

    @Test func defaults() throws {
        let text = """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: p}
            spec:
              excludeNamespaces: []
              rules:
              - name: r
                source: {namespace: a, name: s}
                targets: {namespacePatterns: ["*"]}
            """
        let p = try ReplicationPolicy.load(Array(text.utf8), source: "p.yaml")
        #expect(p.excludeNamespaces.isEmpty)
        let r = p.rules[0]
        #expect(r.mode == .sync && r.onConflict == .skip && r.prune && r.onSourceDelete == .retain && r.targetName == nil)
    }

    /// `excludeNamespaces: null` (or `~`) is absent: the kube-* defaults stay.
    @Test func nullExcludeNamespacesKeepsDefaults() throws {
        for null in ["null", "~"] {
            let text = """
                apiVersion: dynsecret.io/v1alpha1
                kind: ReplicationPolicy
                metadata: {name: p}
                spec:
                  excludeNamespaces: \(null)
                  rules:
                  - name: r
                    source: {namespace: a, name: s}
                    targets: {namespacePatterns: ["*"]}
                """
            let p = try ReplicationPolicy.load(Array(text.utf8), source: "p.yaml")
            #expect(p.excludeNamespaces == ReplicationPolicy.defaultExcludedNamespaces)
        }
    }

    /// (replacement of a line of `good`, expected field path, expected line, message fragment)
    static let bad: [(String, String, String, Int, String)] = [
        ("    prune: false", "    prune: false\n    colour: blue", "spec.rules[0].colour", 26, "unknown field"),
        ("    prune: false", "    prune: maybe", "spec.rules[0].prune", 25, "expected boolean"),
        ("      namespacePatterns: [\"team-*\"]", "      namespacePatterns: [\"team-[\"]", "spec.rules[0].targets.namespacePatterns[0]", 13, "invalid glob"),
        ("          operator: In", "          operator: Near", "spec.rules[0].targets.namespaceSelector.matchExpressions[0].operator", 19, "not a valid selector operator"),
        ("          inference: enabled", "          inference: \"bad value!\"", "spec.rules[0].targets.namespaceSelector.matchLabels[inference]", 16, "invalid label value"),
        ("      name: regcred", "      selector: {matchLabels: {a: b}}", "spec.rules[0].targetName", 22, "single-source"),
        ("      name: regcred", "      name: regcred\n      selector: {}", "spec.rules[0].source.selector", 11, "mutually exclusive"),
        ("    mode: create-only", "    mode: mirror", "spec.rules[0].mode", 23, "unsupported value"),
        ("    copyLabels: [team]", "    copyLabels: [dynsecret.io/replica]", "spec.rules[0].copyLabels[0]", 28, "never copied"),
        ("      namespaces: [team-a]", "      namespaces: [Team_A]", "spec.rules[0].targets.namespaces[0]", 12, "invalid namespace"),
        ("  name: pull-secrets", "  name: pull-secrets\n  colour: x", "metadata.colour", 5, "unknown field"),
        ("      name: regcred", "      selector: {}", "spec.rules[0].source.selector", 10, "empty selector"),
        ("      namespacePatterns: [\"team-*\"]", "      namespacePatterns: [\"team-\(String(repeating: "x", count: 300))*\"]",
         "spec.rules[0].targets.namespacePatterns[0]", 13, "glob of 306 characters; at most 256"),
        ("      namespacePatterns: [\"team-*\"]", "      namespacePatterns: [\"\(String(repeating: "ab", count: 32))[a-z]*\"]",
         "spec.rules[0].targets.namespacePatterns[0]", 13, "matches only names of 65 or more characters"),
    ]

    /// The policy of issue 18: a 60,000-character glob repeated 5,000 times by a YAML alias (75 KB of YAML). It is
    /// refused at decoding, before any namespace is matched against it.
    @Test func aliasRepeatedHugeGlobIsRefused() throws {
        let glob = String(repeating: "a*", count: 30_000)
        let text = """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: p}
            spec:
              rules:
              - name: r
                source: {namespace: a, name: s}
                targets:
                  namespacePatterns: [&g "\(glob)", \(Array(repeating: "*g", count: 4_999).joined(separator: ", "))]
            """
        let error = #expect(throws: ManifestError.self) { try ReplicationPolicy.load(Array(text.utf8), source: "p.yaml") }
        #expect(error?.field == "spec.rules[0].targets.namespacePatterns")
        #expect(error?.message.contains("too many patterns: 5000, at most 1000") == true, "\(error?.description ?? "")")
        let fewer = text.replacingFirst(Array(repeating: "*g", count: 4_999).joined(separator: ", "), with: Array(repeating: "*g", count: 99).joined(separator: ", "))
        let one = #expect(throws: ManifestError.self) { try ReplicationPolicy.load(Array(fewer.utf8), source: "p.yaml") }
        #expect(one?.field == "spec.rules[0].targets.namespacePatterns[0]")
        #expect(one?.message.contains("glob of 60000 characters; at most 256") == true, "\(one?.description ?? "")")
    }

    @Test func longPatternsThatCanMatchAreAccepted() throws {
        // Classes and escapes make a pattern longer than the names it matches.
        let pattern = "team-" + String(repeating: "[a-z0-9]", count: 20) + "-\\-*"
        #expect(pattern.count > 63)
        let text = Self.good.replacingFirst("      namespacePatterns: [\"team-*\"]", with: "      namespacePatterns: ['\(pattern)']")
        let p = try ReplicationPolicy.load(Array(text.utf8), source: "p.yaml")
        #expect(p.rules[0].targets.namespacePatterns == [pattern])
    }

    @Test(arguments: 0..<bad.count)
    func badPolicies(_ i: Int) throws {
        let (old, new, field, line, fragment) = Self.bad[i]
        #expect(Self.good.contains(old))
        let text = Self.good.replacingFirst(old, with: new)
        let error = #expect(throws: ManifestError.self) { try ReplicationPolicy.load(Array(text.utf8), source: "bad.yaml") }
        #expect(error?.source == "bad.yaml")
        #expect(error?.field == field)
        #expect(error?.line == line)
        #expect(error?.message.contains(fragment) == true, "\(error?.description ?? "")")
    }

    @Test func missingSource() {
        let text = """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: p}
            spec:
              rules:
              - name: r
                targets: {namespaces: [a]}
            """
        let error = #expect(throws: ManifestError.self) { try ReplicationPolicy.load(Array(text.utf8), source: "p.yaml") }
        #expect(error?.description == "p.yaml: line 6: spec.rules[0].source: required value: a rule needs a source")
    }

    @Test func duplicateRuleNames() {
        let text = """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: p}
            spec:
              rules:
              - {name: r, source: {namespace: a, name: s}, targets: {namespaces: [b]}}
              - {name: r, source: {namespace: a, name: t}, targets: {namespaces: [c]}}
            """
        let error = #expect(throws: ManifestError.self) { try ReplicationPolicy.load(Array(text.utf8), source: "p.yaml") }
        #expect(error?.field == "spec.rules[1].name")
        #expect(error?.line == 7)
    }

    @Test func selectorSemantics() {
        let s = LabelSelector(matchLabels: ["a": "1"], matchExpressions: [
            .init(key: "b", op: "In", values: ["x", "y"]), .init(key: "c", op: "NotIn", values: ["z"]),
            .init(key: "d", op: "Exists"), .init(key: "e", op: "DoesNotExist"),
        ])
        #expect(s.matches(["a": "1", "b": "x", "d": ""]))
        #expect(s.matches(["a": "1", "b": "y", "c": "w", "d": "q"]))
        #expect(!s.matches(["a": "2", "b": "x", "d": ""]))
        #expect(!s.matches(["a": "1", "b": "q", "d": ""]))
        #expect(!s.matches(["a": "1", "b": "x", "c": "z", "d": ""]))
        #expect(!s.matches(["a": "1", "b": "x"]))
        #expect(!s.matches(["a": "1", "b": "x", "d": "", "e": ""]))
        #expect(LabelSelector().matches([:]))
    }

    @Test(arguments: [("team-*", "team-a", true), ("team-*", "teams", false), ("t?am", "team", true), ("[a-c]x", "bx", true),
                      ("[^a-c]x", "bx", false), ("ns", "ns", true), ("ns", "ns2", false), ("*", "anything", true)])
    func globs(_ pattern: String, _ name: String, _ expected: Bool) {
        #expect(NamespaceGlob.problem(pattern) == nil)
        #expect(NamespaceGlob.matches(pattern, name) == expected)
    }

    @Test(arguments: ["[", "a[", "\\", "[]", "[a-]", "[-a]", ""])
    func badGlobs(_ pattern: String) {
        #expect(NamespaceGlob.problem(pattern) != nil)
    }

    /// FIPS 180-4 vectors.
    @Test func sha256Vectors() {
        #expect(ReplicaContentHash.hex(SHA256Pure.digest(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(ReplicaContentHash.hex(SHA256Pure.digest([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(ReplicaContentHash.hex(SHA256Pure.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(ReplicaContentHash.hex(SHA256Pure.digest([UInt8](repeating: 0x61, count: 1_000_000)))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func contentHashCoversTypeKeysAndValues() {
        let base = ReplicaContentHash.of(type: "Opaque", data: ["a": [1], "b": [2]])
        #expect(base.hasPrefix("sha256:") && base.count == 71)
        #expect(base == ReplicaContentHash.of(type: "Opaque", data: ["b": [2], "a": [1]]))
        #expect(base != ReplicaContentHash.of(type: "kubernetes.io/tls", data: ["a": [1], "b": [2]]))
        #expect(base != ReplicaContentHash.of(type: "Opaque", data: ["a": [1, 2]]))
        #expect(base != ReplicaContentHash.of(type: "Opaque", data: ["a": [1], "b": [3]]))
        #expect(ReplicaContentHash.of(type: "Opaque", data: ["ab": []]) != ReplicaContentHash.of(type: "Opaque", data: ["a": Array("b".utf8)]))
    }
}

extension String {
    func replacingFirst(_ old: String, with new: String) -> String {
        guard let r = range(of: old) else { return self }
        return replacingCharacters(in: r, with: new)
    }
}
