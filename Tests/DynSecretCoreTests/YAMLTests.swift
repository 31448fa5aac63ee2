import Testing
@testable import DynSecretCore

@Suite struct ManifestReaderTests {
    @Test func multiDocumentYAMLWithLines() throws {
        let text = """
            # leading comment
            apiVersion: v1
            kind: Secret
            ---
            ---
            kind: List
            items: [a, 1, yes, off, ~, 0x1F, 017, 1.5, .5, 1e3, "yes", '2']
            """
        let docs = try ManifestReader.read(Array(text.utf8), source: "f.yaml")
        #expect(docs.map(\.index) == [1, 3])
        #expect(docs.map(\.line) == [2, 6])
        #expect(docs[1].value["items"] == .array([
            .string("a"), .number("1"), .bool(true), .bool(false), .null, .number("31"), .number("15"),
            .number("1.5"), .number("0.5"), .number("1e3"), .string("yes"), .string("2"),
        ]))
    }

    @Test func jsonStream() throws {
        let docs = try ManifestReader.read(Array("{\"a\":1}\n{\"b\":\"}\"}\n".utf8), source: "-")
        #expect(docs.count == 2)
        #expect(docs[1].value["b"] == .string("}"))
        #expect(docs[1].line == 2)
    }

    @Test func errorsNameFileAndLine() {
        #expect {
            try ManifestReader.read(Array("a: 1\nb: [\n".utf8), source: "bad.yaml")
        } throws: { e in
            guard let e = e as? ManifestError else { return false }
            return e.source == "bad.yaml" && e.line != nil && e.description.hasPrefix("bad.yaml: document 1")
        }
        #expect {
            try ManifestReader.read(Array("a: 1\na: 2\n".utf8), source: "dup.yaml")
        } throws: { e in
            (e as? ManifestError)?.message.contains("duplicate") == true
        }
        #expect {
            try ManifestReader.read(Array("{\"a\":\n  nope}".utf8), source: "bad.json")
        } throws: { e in
            (e as? ManifestError)?.line == 2
        }
    }

    @Test func yamlErrorsNeverQuoteTheText() {
        let canary = "CANARY-7f3a9"
        let text = "data:\n  password: \(canary)\n  password: \(canary)\n"
        #expect {
            try ManifestReader.read(Array(text.utf8), source: "s.yaml")
        } throws: { e in
            !"\(e)".contains(canary)
        }
        let broken = "data:\n  key: \"\(canary)\n"
        #expect {
            try ManifestReader.read(Array(broken.utf8), source: "s.yaml")
        } throws: { e in
            !"\(e)".contains(canary)
        }
    }
}

@Suite struct YAMLWriterTests {
    /// Every string must read back unchanged, whatever quoting it needed.
    @Test(arguments: [
        "", " ", "a", "yes", "No", "on", "OFF", "y", "~", "null", "true", "1", "-1", "0x1F", "1e3", ".5", "1.", "+1", "0o17",
        "2001-12-14", "12:30", "1_000", ".inf", "-.Inf", ".NaN", "- a", "-a", "? x", ":x", "a: b", "a:b", "a #b", "a#b", "#x",
        "[x]", "{x}", "a, b", "*a", "&a", "!a", "|", ">", "'", "\"", "%x", "@x", "`x`", "---", "...", " lead", "trail ",
        "multi\nline", "multi\nline\n", "trailing\n\n", "\nleading newline", "tab\there", "cr\r", "nul\u{0}", "é✓日本😀",
        "line  \nwith trailing", "<<", "=",
    ])
    func stringsRoundTrip(s: String) throws {
        let doc = YAMLWriter.document(.object(JSONObject([("k", .string(s)), (s.isEmpty ? "e" : s, .string("v"))])))
        let back = try #require(try ManifestReader.read(Array(doc.utf8), source: "t").first)
        #expect(back.value["k"] == .string(s), "\(doc)")
        #expect(back.value[s.isEmpty ? "e" : s] == .string("v"), "\(doc)")
    }

    @Test func structures() throws {
        let v = try JSONParser.parse(#"{"b":[{"y":1,"x":[]},[1,2],"s"],"a":{"n":null,"t":true},"e":{}}"#)
        let expected = """
            a:
              "n": null
              t: true
            b:
            - x: []
              "y": 1
            - - 1
              - 2
            - s
            e: {}

            """
        #expect(YAMLWriter.document(v) == expected)
        #expect(try ManifestReader.read(Array(expected.utf8), source: "t").first?.value == v.sortedForTest())
    }

    @Test(arguments: [
        (["b", "a", "A", "_", "1"], ["_", "1", "A", "a", "b"]),  // non-letters first; a digit run outranks "_"
        (["a10", "a9", "a1"], ["a1", "a9", "a10"]),
        ([".dockerconfigjson", "auth", "Auth"], [".dockerconfigjson", "Auth", "auth"]),
        (["x.io/b", "x.io/a", "x-io"], ["x-io", "x.io/a", "x.io/b"]),
    ])
    func goYAMLKeyOrder(keys: [String], sorted: [String]) {
        #expect(keys.sorted(by: YAMLWriter.goYAMLKeyLess) == sorted)
    }
}

extension JSONValue {
    /// The value with object keys in go-yaml order, as a YAML document reads back.
    func sortedForTest() -> JSONValue {
        switch self {
        case .object(let o):
            return .object(JSONObject(o.members.sorted { YAMLWriter.goYAMLKeyLess($0.key, $1.key) }.map { ($0.key, $0.value.sortedForTest()) }))
        case .array(let a): return .array(a.map { $0.sortedForTest() })
        default: return self
        }
    }
}
