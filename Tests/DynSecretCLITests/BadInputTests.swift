import DynSecretCore
import Foundation
import Testing

private let canary = "CANARY-bad-input-93b1"

/// Hostile and broken input: clear errors, bounded work, no crash, no canary in any output.
@Suite struct BadInputTests {
    func validate(_ text: String, _ extra: [String] = []) async -> RunResult {
        await dynsecret(["validate", "-f", "-"] + extra, stdin: text)
    }

    func secretYAML(_ name: String, _ body: String) -> String {
        "apiVersion: v1\nkind: Secret\nmetadata: {name: \(name)}\n\(body)\n"
    }

    @Test func yamlSyntaxErrorNamesDocumentAndLine() async {
        let text = secretYAML("a", "stringData: {p: \(canary)}") + "---\n" + secretYAML("b", "stringData: {p: \"\(canary)}")
        let r = await validate(text)
        #expect(r.code == 2)
        #expect(r.stdout.contains("-: document 2 (line "))
        #expect(r.stdout.contains("error[manifest-syntax]"))
        #expect(!r.stdout.contains(canary) && !r.stderr.contains(canary))
    }

    @Test func nonObjectDocuments() async {
        let r = await validate("42\n---\n- a\n---\n\"\(canary)\"\n")
        #expect(r.code == 1)
        #expect(r.stdout.components(separatedBy: "manifest-not-object").count == 4)
        #expect(!r.stdout.contains(canary))
    }

    @Test func invalidBase64() async {
        let r = await validate(secretYAML("s", "data: {password: \"\(canary)==\"}"))
        #expect(r.code == 1 && r.stdout.contains("data[password]: error[secret-invalid-field]: invalid base64 value"))
        #expect(!r.stdout.contains(canary))
    }

    @Test func binaryGarbage() async {
        var bytes = [UInt8](repeating: 0, count: 4096)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 7919 &+ 13) }
        let r = await dynsecret(["validate", "-f", "-"], stdin: String(decoding: [0xFF, 0xFE] + bytes, as: UTF8.self) + canary)
        #expect(r.code == 2)
        #expect(!r.stdout.contains(canary) && !r.stderr.contains(canary))
    }

    @Test func overOneMebibyte() async {
        let value = Base64.encode([UInt8](repeating: 0x41, count: 1_048_577))
        let r = await validate(secretYAML("big", "data: {blob: \(value)}"))
        #expect(r.code == 1 && r.stdout.contains("error[secret-size]: Too long: may not be more than 1048576 bytes"))
    }

    @Test func deeplyNestedFlowAndBlock() async {
        let flow = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: " + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000) + "\n"
        let r1 = await validate(flow)
        #expect(r1.code == 2 && r1.stdout.contains("nesting deeper than 100 levels"))
        var block = "a:\n"
        for depth in 1..<600 { block += String(repeating: " ", count: depth * 2) + "a:\n" }
        let r2 = await validate(block)
        #expect(r2.code == 2 && r2.stdout.contains("nesting deeper than"))
        let dashes = String(repeating: "- ", count: 5_000) + "x\n"
        let r3 = await validate(dashes)
        #expect(r3.code == 2 && r3.stdout.contains("nesting deeper than"))
    }

    @Test func aliasExpansionIsBounded() async {
        var text = "a0: &a0 [\(canary), \(canary), \(canary), \(canary), \(canary), \(canary), \(canary), \(canary), \(canary), \(canary)]\n"
        for i in 1...9 { text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        let r = await validate(text)
        #expect(r.code == 2 && r.stdout.contains("YAML nodes"))
        #expect(!r.stdout.contains(canary))
    }

    @Test func oversizedDocumentIsRejectedWithoutParsing() async {
        let big = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: \"" + String(repeating: "x", count: 3 * 1024 * 1024) + "\"}\n"
        let r = await validate(big + "---\n" + secretYAML("Bad_Name", ""))
        #expect(r.code == 2 && r.stdout.contains("larger than 3145728 bytes"))
        #expect(r.stdout.contains("error[secret-name]"))  // the next document is still checked
    }

    @Test func duplicateKeys() async {
        let r = await validate(secretYAML("s", "stringData: {p: \(canary)}\nstringData: {p: \(canary)}"))
        #expect(r.code == 2 && r.stdout.contains("duplicate mapping key \"stringData\""))
        #expect(!r.stdout.contains(canary))
    }

    @Test func missingInputAndUsage() async {
        let none = await dynsecret(["validate"])
        #expect(none.code == 2 && none.stdout.isEmpty && none.stderr.contains("-f PATH"))
        let missing = await dynsecret(["validate", "-f", "/nonexistent/dir"])
        #expect(missing.code == 2 && missing.stdout.isEmpty && missing.stderr.contains("/nonexistent/dir"))
        let badNow = await dynsecret(["validate", "-f", "-", "--now", "tomorrow"])
        #expect(badNow.code == 2 && badNow.stderr.contains("--now"))
    }

    /// 1,000 pull secrets in a JSON List, one malformed: index lists 999 and reports the one.
    @Test func indexSurvivesOneMalformedSecret() async throws {
        var items: [JSONValue] = []
        for i in 0..<1000 {
            let payload = i == 500 ? #"{"auths":{"ghcr.io":{"auth":"\#(canary)"}}}"# :
                #"{"auths":{"registry-\#(i % 7).example.com":{"auth":"\#(Base64.encode(Array("u\(i):\(canary)".utf8)))"}}}"#
            items.append(.object(JSONObject([
                ("apiVersion", .string("v1")), ("kind", .string("Secret")),
                ("metadata", .object(JSONObject([("name", .string("pull-\(i)")), ("namespace", .string("ns-\(i % 3)"))]))),
                ("type", .string("kubernetes.io/dockerconfigjson")),
                ("data", .object(JSONObject([(".dockerconfigjson", .string(Base64.encode(Array(payload.utf8))))]))),
            ])))
        }
        let list = GoJSONWriter.compact(.object(JSONObject([("apiVersion", .string("v1")), ("kind", .string("SecretList")), ("items", .array(items))])))
        let r = await dynsecret(["index", "-f", "-", "-o", "json"], stdin: String(decoding: list, as: UTF8.self))
        #expect(r.code == 1)
        let out = try JSONParser.parse(r.stdout)
        #expect(out["pullSecrets"] == .number("999"))
        let listed = (out["namespaces"]?.arrayValue ?? []).flatMap { ns in
            (ns["registries"]?.arrayValue ?? []).flatMap { $0["secrets"]?.arrayValue ?? [] }
        }
        #expect(listed.count == 999)
        #expect(out["problems"]?.arrayValue?.count == 1)
        #expect(out["problems"]?.arrayValue?.first?["name"] == .string("pull-500"))
        #expect(r.stderr.contains("pull-500") && r.stderr.contains("document 1"))
        #expect(!r.stdout.contains(canary) && !r.stderr.contains(canary))
    }
}

/// A 100 MB input through the real binary: a clear error and bounded memory.
@Suite(.heavy) struct LargeInputTests {
    @Test(.enabled(if: dynsecretBinary != nil && FileManager.default.isExecutableFile(atPath: "/usr/bin/time"), "needs the dynsecret binary and GNU time"))
    func hundredMegabytes() throws {
        let tmp = try TempDir()
        let path = tmp.url.appendingPathComponent("big.yaml").path
        // Many valid documents followed by one huge one.
        var chunk = ""
        for i in 0..<2_000 { chunk += "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c\(i)}\ndata: {k: v}\n---\n" }
        let handle = try #require(FileHandle(forWritingAtPath: FileManager.default.createFile(atPath: path, contents: nil) ? path : ""))
        handle.write(Data(chunk.utf8))
        handle.write(Data("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: huge}\ndata: {k: \"".utf8))
        let block = Data(repeating: UInt8(ascii: "x"), count: 1 << 20)
        for _ in 0..<100 { handle.write(block) }
        handle.write(Data("\"}\n".utf8))
        try handle.close()
        let rss = tmp.url.appendingPathComponent("rss").path
        let r = try runProcess("/usr/bin/time", ["-f", "%M", "-o", rss, dynsecretBinary!, "validate", "-f", path])
        #expect(r.code == 2)
        #expect(r.stdout.contains("larger than 3145728 bytes"))
        #expect(r.stdout.contains("2001 objects") || r.stdout.contains("2000 objects"))
        let kib = Int(try String(contentsOfFile: rss, encoding: .utf8).split(separator: "\n").last ?? "") ?? Int.max
        #expect(kib < 400 * 1024, "peak RSS \(kib) KiB")
    }
}
