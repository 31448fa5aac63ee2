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

@Suite struct ValidationPackagingTests {
    @Test func docsListEveryRule() async throws {
        let doc = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/validation.md"), encoding: .utf8)
        for rule in ValidationRule.all { #expect(doc.contains("| `\(rule.id)` | \(rule.severity.rawValue) |"), "\(rule.id)") }
        let listed = await dynsecret(["validate", "--list-rules"])
        #expect(listed.code == 0 && listed.stdout.split(separator: "\n").count == ValidationRule.all.count + 1)
    }

    @Test func preCommitHooksDeclareTheValidateEntry() throws {
        let bytes = Array(try Data(contentsOf: repositoryRoot.appendingPathComponent(".pre-commit-hooks.yaml")))
        let hooks = try #require(try ManifestReader.read(bytes, source: ".pre-commit-hooks.yaml").first?.value.arrayValue)
        #expect(hooks.compactMap { $0["id"]?.stringValue } == ["dynsecret-validate", "dynsecret-validate-system"])
        #expect(hooks.allSatisfy { $0["entry"]?.stringValue == "dynsecret validate" })
    }

    /// The hook Job renders with kustomize, carries the Helm and Argo CD hook annotations and validates.
    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: rendering deploy/hooks with kustomize is skipped"))
    func hookJobRenders() async throws {
        let rendered = try runProcess(kubectlPath!, ["kustomize", repositoryRoot.appendingPathComponent("deploy/hooks").path])
        #expect(rendered.code == 0, "\(rendered.stderr)")
        let docs = try ManifestReader.read(Array(rendered.stdout.utf8), source: "hooks")
        let kinds = docs.compactMap { $0.value["kind"]?.stringValue }.sorted()
        #expect(kinds == ["ConfigMap", "Job", "Role", "RoleBinding", "ServiceAccount"])
        let job = try #require(docs.first { $0.value["kind"] == .string("Job") }?.value)
        #expect(job["metadata"]?["annotations"]?["helm.sh/hook"] == .string("pre-install,pre-upgrade"))
        #expect(job["metadata"]?["annotations"]?["argocd.argoproj.io/hook"] == .string("PreSync"))
        let pod = job["spec"]?["template"]?["spec"]
        #expect(pod?["securityContext"]?["runAsNonRoot"] == .bool(true))
        #expect(pod?["containers"]?.arrayValue?.first?["securityContext"]?["readOnlyRootFilesystem"] == .bool(true))
        let role = try #require(docs.first { $0.value["kind"] == .string("Role") }?.value)
        let verbs = (role["rules"]?.arrayValue ?? []).flatMap { $0["verbs"]?.arrayValue ?? [] }.compactMap(\.stringValue)
        #expect(Set(verbs).isSubset(of: ["get", "list"]))
        let check = await dynsecret(["validate", "-f", "-", "--fail-on", "warning"], stdin: rendered.stdout)
        #expect(check.code == 0, "\(check.stdout)")
    }
}

/// ConfigMaps under the API server's rules, in `validate`.
@Suite struct ConfigMapValidationTests {
    @Test func apiServerRulesWithFileDocumentAndField() async throws {
        let dir = try TempDir()
        let path = try dir.file("cm.yaml", """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: good, namespace: team-a}
            data: {endpoint: "https://api.example"}
            binaryData: {blob: AAEC}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: Bad_Name}
            data: {"bad key": x, dup: "y"}
            binaryData: {dup: AA==}
            extra: true
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: b64}
            binaryData: {k: "not base64"}
            """)
        let r = await dynsecret(["validate", "-f", path, "-o", "json"])
        #expect(r.code == 1, "\(r.stderr)")
        let findings = try JSONParser.parse(Array(r.stdout.utf8))["findings"]?.arrayValue ?? []
        let got = Set(findings.map { "\($0["rule"]?.stringValue ?? "") \($0["document"].map { "\($0)" } ?? "") \($0["field"]?.stringValue ?? "")" })
        for want in ["configmap-name", "configmap-key", "configmap-unknown-field", "configmap-invalid-field"] {
            #expect(findings.contains { $0["rule"]?.stringValue == want }, "\(want): \(got)")
        }
        #expect(findings.contains { $0["rule"]?.stringValue == "configmap-key" && $0["field"]?.stringValue == "data[dup]"
            && ($0["message"]?.stringValue ?? "").contains("duplicate of key present in binaryData") }, "\(r.stdout)")
        #expect(findings.contains { $0["rule"]?.stringValue == "configmap-invalid-field" && $0["field"]?.stringValue == "binaryData[k]" }, "\(r.stdout)")
        #expect(!findings.contains { ($0["object"]?.stringValue ?? "").contains("good") }, "the valid ConfigMap has no finding: \(r.stdout)")
    }
}
