import DynSecretCore
import Foundation
import Testing

/// One `# run: ARGS => RULES` line of a corpus file.
struct CorpusRun: CustomTestStringConvertible, Sendable {
    var file: String
    var args: [String]
    var expected: [String]
    var testDescription: String { "\(file) \(args.joined(separator: " "))" }
}

let corpusDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus")
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let corpusRuns: [CorpusRun] = {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: corpusDirectory.path))?.filter { $0.hasSuffix(".yaml") }.sorted() ?? []
    var runs: [CorpusRun] = []
    for file in files {
        let text = (try? String(contentsOf: corpusDirectory.appendingPathComponent(file), encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("# run:") {
            let parts = line.dropFirst("# run:".count).components(separatedBy: "=>")
            let args = parts[0].split(separator: " ").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "'")) }
            runs.append(CorpusRun(file: file, args: args, expected: parts[1].split(separator: " ").map(String.init).sorted()))
        }
    }
    return runs
}()

@Suite struct ValidationCorpusTests {
    @Test func corpusIsThere() {
        #expect(corpusRuns.count >= 10)
    }

    /// Every corpus file yields exactly the expected rule ids, and no planted canary value is ever printed.
    @Test(arguments: corpusRuns)
    func corpus(run: CorpusRun) async throws {
        let path = corpusDirectory.appendingPathComponent(run.file).path
        let r = await dynsecret(["validate", "-f", path, "-o", "json"] + run.args)
        let report = try JSONParser.parse(r.stdout)
        let rules = (report["findings"]?.arrayValue ?? []).compactMap { $0["rule"]?.stringValue }.sorted()
        #expect(rules == run.expected, "\(r.stdout)")
        #expect(!r.stdout.contains("CANARY") && !r.stderr.contains("CANARY"))
        let hasErrors = (report["findings"]?.arrayValue ?? []).contains { $0["severity"] == .string("error") }
        let expectedCode: Int32 = rules.contains("manifest-syntax") ? 2 : (hasErrors ? 1 : 0)
        #expect(r.code == expectedCode)
        // Every finding names file, document, object (except unreadable documents) and rule.
        for f in report["findings"]?.arrayValue ?? [] {
            #expect(f["source"]?.stringValue == path)
            #expect(f["document"] != nil)
            if f["rule"] != .string("manifest-syntax") && f["rule"] != .string("manifest-not-object") { #expect(f["object"] != nil) }
        }
        // The text and SARIF forms carry the same findings.
        let text = await dynsecret(["validate", "-f", path] + run.args)
        #expect(text.stdout.split(separator: "\n").count == rules.count + 1)
        let sarif = await dynsecret(["validate", "-f", path, "-o", "sarif"] + run.args)
        let results = try JSONParser.parse(sarif.stdout)["runs"]?.arrayValue?.first?["results"]?.arrayValue ?? []
        #expect(results.compactMap { $0["ruleId"]?.stringValue }.sorted() == rules)
    }

    @Test func privateRegistriesDecideSeverity() async throws {
        let path = corpusDirectory.appendingPathComponent("workloads.yaml").path
        func uncovered(_ args: [String]) async throws -> [String] {
            let r = await dynsecret(["validate", "-f", path, "-o", "json"] + args)
            return (try JSONParser.parse(r.stdout)["findings"]?.arrayValue ?? [])
                .filter { $0["rule"] == .string("image-uncovered") }.compactMap { $0["severity"]?.stringValue }.sorted()
        }
        #expect(try await uncovered([]) == ["note", "note", "note", "note"])
        #expect(try await uncovered(["--private-registry", "nvcr.io"]) == ["error", "error", "note", "note"])
    }

    @Test func apiServerWording() async throws {
        let path = corpusDirectory.appendingPathComponent("api-rules.yaml").path
        let r = await dynsecret(["validate", "-f", path])
        #expect(r.stdout.contains(#"metadata.name: error[secret-name]: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"#))
        #expect(r.stdout.contains(#"data[bad/key]: error[secret-key]: Invalid value: "bad/key": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"#))
        #expect(r.stdout.contains(#"data[..]: error[secret-key]: Invalid value: "..": must not be '..'"#))
        #expect(r.stdout.contains(#"data[..hidden]: error[secret-key]: Invalid value: "..hidden": must not start with '..'"#))
        #expect(r.stdout.contains("metadata.name: error[secret-name]: Required value: name or generateName is required"))
    }

    /// The realistic example set in deploy/examples validates clean.
    @Test func deployExamplesAreClean() async throws {
        let examples = repositoryRoot.appendingPathComponent("deploy/examples").path
        let r = await dynsecret(["validate", "-f", examples, "--private-registry", "nvcr.io", "--private-registry", "registry.inference.example.com",
                                 "--fail-on", "warning", "-o", "json"])
        #expect(r.code == 0, "\(r.stdout)\(r.stderr)")
        let summary = try JSONParser.parse(r.stdout)["summary"]
        #expect(summary?["podSpecs"] != .number("0"))
    }
}
