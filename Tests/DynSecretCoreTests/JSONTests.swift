import Testing
@testable import DynSecretCore

@Suite struct JSONParserTests {
    @Test func parsesAndKeepsOrder() throws {
        let v = try JSONParser.parse(#"{"b":1,"a":[true,false,null,-0.5e+3,"x"],"c":{}}"#)
        let o = try #require(v.objectValue)
        #expect(o.keys == ["b", "a", "c"])
        #expect(v["a"] == .array([.bool(true), .bool(false), .null, .number("-0.5e+3"), .string("x")]))
        #expect(v["c"] == .object(JSONObject()))
    }

    @Test func lastDuplicateWinsInFirstPosition() throws {
        let o = try #require(try JSONParser.parse(#"{"a":1,"b":2,"a":3}"#).objectValue)
        #expect(o.keys == ["a", "b"])
        #expect(o["a"] == .number("3"))
    }

    @Test(arguments: [
        (#""\u00e9\ud83d\ude00\n\t\"\\\/""#, "é😀\n\t\"\\/"),
        (#""\ud800x""#, "\u{FFFD}x"),  // lone high surrogate, as Go decodes it
        (#""\udc00""#, "\u{FFFD}"),
        (#""plain""#, "plain"),
    ])
    func strings(input: String, expected: String) throws {
        #expect(try JSONParser.parse(input) == .string(expected))
    }

    @Test(arguments: [
        ("", 1, 1), ("{", 1, 2), ("{\"a\" 1}", 1, 6), ("[1,]", 1, 4), ("01", 1, 2), ("1.", 1, 1),
        ("\"a\nb\"", 1, 3), ("{\n  \"a\": tru\n}", 2, 8), ("[1] [2]", 1, 5), ("\"\\x\"", 1, 2), ("-", 1, 1),
    ])
    func rejectsWithPosition(input: String, line: Int, column: Int) {
        #expect {
            _ = try JSONParser.parse(input)
        } throws: { error in
            guard let e = error as? JSONSyntaxError else { return false }
            return e.line == line && e.column == column
        }
    }

    @Test func limitsNesting() {
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(String(repeating: "[", count: 600) + String(repeating: "]", count: 600)) }
        #expect(throws: Never.self) { try JSONParser.parse(String(repeating: "[", count: 500) + String(repeating: "]", count: 500)) }
    }
}

@Suite struct GoJSONWriterTests {
    @Test(arguments: [
        ("<>&\"\\x", #""\u003c\u003e\u0026\"\\x""#),                 // research vector A9
        ("a\u{2028}b\u{2029}c", #""a\u2028b\u2029c""#),
        ("\u{01}\u{08}\u{0C}\u{1F}\u{7F}", #""\u0001\b\f\u001f\#u{7F}""#),
        ("pässwörd✓日本", #""pässwörd✓日本""#),
        ("/path", #""/path""#),
    ])
    func escapesAsGo(input: String, expected: String) {
        var out: [UInt8] = []
        GoJSONWriter.writeString(input, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == expected)
    }

    @Test func compactAndIndented() throws {
        let v = try JSONParser.parse(#"{"a":[1,{"b":null}],"e":{},"f":[]}"#)
        #expect(String(decoding: GoJSONWriter.compact(v), as: UTF8.self) == #"{"a":[1,{"b":null}],"e":{},"f":[]}"#)
        let indented = """
            {
                "a": [
                    1,
                    {
                        "b": null
                    }
                ],
                "e": {},
                "f": []
            }

            """
        #expect(String(decoding: GoJSONWriter.indented(v), as: UTF8.self) == indented)
    }

    @Test func roundTripsThroughParser() throws {
        let samples = ["\u{0}", "é\u{1F600}", "\"quoted\" & <tagged>", "tab\tnew\nline", "\u{2028}"]
        for s in samples {
            #expect(try JSONParser.parse(GoJSONWriter.compact(.string(s))) == .string(s))
        }
    }
}

@Suite struct Base64Tests {
    // RFC 4648 §10 test vectors.
    @Test(arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")])
    func rfc4648(plain: String, encoded: String) {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(Base64.decode(encoded) == Array(plain.utf8))
        let raw = String(encoded.prefix { $0 != "=" })
        #expect(Base64.decode(raw, padded: false) == Array(plain.utf8))
    }

    @Test func goRules() {
        #expect(Base64.decode("Zm9v\nYmFy\r\n") == Array("foobar".utf8))  // newlines skipped
        #expect(Base64.decode("Zm9vYg") == nil)                            // padding required
        #expect(Base64.decode("Zm9vYg==", padded: false) == nil)           // no padding allowed
        #expect(Base64.decode("Zm9v!") == nil)
        #expect(Base64.decode("Z===") == nil)
        #expect(Base64.decode("Zm9v YmFy") == nil)
        #expect(Base64.decode("Zg=a") == nil)
        let all = (0...255).map { UInt8($0) }
        #expect(Base64.decode(Base64.encode(all)) == all)
    }
}
