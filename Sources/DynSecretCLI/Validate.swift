internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretKube
internal import Foundation

/// `dynsecret validate`: Secrets checked by type, workload images checked for pull-secret coverage.
struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check Secrets by type and that every workload image is covered by a pull secret.",
        discussion: """
            Reads manifests (YAML or JSON, several documents, Lists; files, directories and - for stdin) and \
            reports, per finding, the file, document, object, field and rule. Secrets are checked with the API \
            server's rules and wording, then as their consumers read them (the kubelet for pull secrets, \
            OpenSSL for TLS certificates and keys). Each container image is matched against the pod's pull \
            secrets exactly as the kubelet matches them; an uncovered image from a --private-registry is an error.

            Exit status: 0 no finding at or above --fail-on, 1 findings, 2 usage or input error.

            Examples:
              helm template my-release ./chart | dynsecret validate -f - --private-registry nvcr.io
              dynsecret validate -f deploy/ -o sarif > dynsecret.sarif
            """
    )

    @Option(name: [.short, .customLong("filename")], help: ArgumentHelp("Manifest file or directory (- for stdin); repeatable.", valueName: "path"))
    var filenames: [String] = []

    @Argument(help: ArgumentHelp("More manifest files or directories (as pre-commit passes them).", valueName: "path"))
    var paths: [String] = []

    var files: [String] { filenames + paths }

    @Option(name: [.short, .long], help: "Namespace of objects that name none; with --cluster, the namespace to read.")
    var namespace: String?

    @Flag(name: .customLong("cluster"), help: "Also check the cluster's Secrets and ServiceAccounts, and resolve pull secrets against them.")
    var cluster = false

    @Flag(name: [.customShort("A"), .customLong("all-namespaces")], help: "With --cluster: every namespace.")
    var allNamespaces = false

    @OptionGroup var connection: ClusterConnection

    @Option(name: .customLong("private-registry"), help: ArgumentHelp("Registry that needs credentials (kubelet key syntax: nvcr.io, *.example.com, host:port/path); repeatable.", valueName: "glob"))
    var privateRegistries: [String] = []

    @Option(name: .customLong("expiry-warning"), help: ArgumentHelp("Warn about certificates expiring within this many days.", valueName: "days"))
    var expiryWarning = 30

    @Option(name: .customLong("now"), help: ArgumentHelp("Judge expiry as of this RFC 3339 time instead of now (e.g. the release date).", valueName: "time"))
    var now: String?

    @Option(name: .customLong("fail-on"), help: "Lowest severity that makes the exit status 1.")
    var failOn: SeverityThreshold = .error

    @Option(name: [.short, .long], help: "Output format.")
    var output: FindingsFormat = .text

    @Flag(name: .customLong("list-rules"), help: "Print the rule ids, their default severity and what they check, then exit.")
    var listRules = false

    @Flag(name: .customLong("verify-pull"), help: "Also ask the registries whether each covered image can be pulled with its credentials (network).")
    var verifyPull = false

    @OptionGroup var registry: RegistryOptions

    func validate() throws {
        if listRules { return }
        if files.isEmpty && !cluster { throw ValidationError("give the manifests to check with -f PATH (- for stdin), or --cluster") }
        if allNamespaces && !cluster { throw ValidationError("-A needs --cluster") }
        try registry.check()
        if expiryWarning < 0 { throw ValidationError("--expiry-warning must not be negative") }
        if let now, RFC3339.parse(now) == nil { throw ValidationError("--now \(now): not an RFC 3339 time such as 2027-01-31T00:00:00Z") }
        for glob in privateRegistries where CredentialKeyring.normalize(glob) == nil {
            throw ValidationError("--private-registry \(glob): not a registry host[:port][/path] glob")
        }
    }

    func run() async throws {
        if listRules {
            let rows = [["RULE", "SEVERITY", "CHECKS"]] + ValidationRule.all.map { [$0.id, $0.severity.rawValue, $0.summary] }
            CommandIO.current.writeStdout(Array(Table.render(rows).utf8))
            return
        }
        var options = ValidationOptions(now: now.flatMap(RFC3339.parse) ?? Int64(Date().timeIntervalSince1970))
        options.defaultNamespace = namespace ?? "default"
        options.privateRegistries = privateRegistries
        options.expiryWarningDays = expiryWarning
        var run = ValidationRun(Validator(options: options, inspector: OpenSSLInspector()))
        var inputErrors = 0
        try ManifestInputs.forEachDocument(files) { result in
            switch result {
            case .success(let doc): run.add(doc)
            case .failure(let error):
                inputErrors += 1
                run.addInputError(error)
            }
        }
        if cluster {
            let client = try connection.client(namespace: namespace)
            for doc in try await ClusterReader.secretsAndServiceAccounts(client, namespace: allNamespaces ? nil : client.config.namespace) {
                run.add(doc, fromCluster: true)
            }
        }
        var report = run.finish()
        if verifyPull { try await verifyPulls(&report) }
        CommandIO.current.writeStdout(output.render(report))
        if inputErrors > 0 { throw ExitCode(ExitStatus.usage) }
        if report.findings.contains(where: { $0.severity >= failOn.severity }) { throw ExitCode(ExitStatus.findings) }
    }

    /// Checks each covered image (each distinct image and credential list once, concurrently); a pull that fails
    /// becomes an `image-pull-failed` finding at the image's field.
    func verifyPulls(_ report: inout ValidationReport) async throws(CLIError) {
        var unique: [String: Int] = [:]
        var items: [(text: String, ref: ImageReference, matches: [CredentialKeyring.Match])] = []
        var itemOf: [Int] = []
        for pull in report.imagePulls {
            // In memory only: the identity includes the credential itself.
            let id = ([pull.reference.description] + pull.credentials.map { "\($0.entry.key)\u{1}\($0.entry.credential.username)\u{1}\($0.entry.credential.password)" })
                .joined(separator: "\u{0}")
            if let i = unique[id] {
                itemOf.append(i)
            } else {
                unique[id] = items.count
                itemOf.append(items.count)
                items.append((pull.image, pull.reference, pull.credentials))
            }
        }
        guard !items.isEmpty else { return }
        let results = await RegistryVerification.pulls(items, client: try registry.client(concurrency: items.count))
        for (pull, i) in zip(report.imagePulls, itemOf) where !results[i].check.status.succeeded {
            let r = results[i]
            let credential = r.used.map { " with pull secret \($0.entry.source.secretName) [\($0.entry.source.registryKey)]" } ?? ""
            let tried = r.candidates > 1 ? " (all \(r.candidates) credentials the kubelet would try failed)" : ""
            report.findings.append(pull.finding(.imagePullFailed, "image \(pull.image): \(r.check.status.rawValue) from \(r.check.registry)\(credential): \(r.check.message)\(tried)"))
        }
    }
}

/// `--fail-on` choices.
enum SeverityThreshold: String, ExpressibleByArgument, CaseIterable {
    case error, warning, note

    var severity: Severity { Severity(rawValue: rawValue)! }
}

/// `-o` choices for commands that report findings.
enum FindingsFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, sarif

    func render(_ report: ValidationReport) -> [UInt8] {
        switch self {
        case .text: Array(text(report).utf8)
        case .json: GoJSONWriter.indented(json(report))
        case .sarif: GoJSONWriter.indented(Sarif.log(report))
        }
    }

    private func text(_ r: ValidationReport) -> String {
        var out = ""
        for f in r.findings { out += f.text + "\n" }
        let counts = Dictionary(grouping: r.findings, by: \.severity).mapValues(\.count)
        out += "\(r.objects) object\(r.objects == 1 ? "" : "s") (\(r.secrets) Secret\(r.secrets == 1 ? "" : "s"), \(r.podSpecs) pod spec\(r.podSpecs == 1 ? "" : "s"), \(r.images) image\(r.images == 1 ? "" : "s")): "
        out += "\(counts[.error] ?? 0) error\(counts[.error] == 1 ? "" : "s"), \(counts[.warning] ?? 0) warning\(counts[.warning] == 1 ? "" : "s"), \(counts[.note] ?? 0) note\(counts[.note] == 1 ? "" : "s")\n"
        return out
    }

    private func json(_ r: ValidationReport) -> JSONValue {
        let findings: [JSONValue] = r.findings.map(Self.findingJSON)
        let summary = JSONObject([
            ("objects", .number(String(r.objects))), ("secrets", .number(String(r.secrets))),
            ("podSpecs", .number(String(r.podSpecs))), ("images", .number(String(r.images))),
            ("errors", .number(String(r.findings.filter { $0.severity == .error }.count))),
            ("warnings", .number(String(r.findings.filter { $0.severity == .warning }.count))),
            ("notes", .number(String(r.findings.filter { $0.severity == .note }.count))),
        ])
        return .object(JSONObject([("findings", .array(findings)), ("summary", .object(summary))]))
    }

    static func findingJSON(_ f: Finding) -> JSONValue {
        var o = JSONObject()
        o["rule"] = .string(f.rule)
        o["severity"] = .string(f.severity.rawValue)
        o["message"] = .string(f.message)
        if let s = f.source { o["source"] = .string(s) }
        if let d = f.document { o["document"] = .number(String(d)) }
        if let l = f.line { o["line"] = .number(String(l)) }
        if let obj = f.object {
            var r = JSONObject([("kind", .string(obj.kind))])
            if let ns = obj.namespace { r["namespace"] = .string(ns) }
            if let n = obj.name { r["name"] = .string(n) }
            o["object"] = .object(r)
        }
        if let field = f.field { o["field"] = .string(field) }
        return .object(o)
    }
}

/// SARIF 2.1.0 output, for code-scanning UIs.
enum Sarif {
    static func log(_ r: ValidationReport) -> JSONValue {
        let rules: [JSONValue] = ValidationRule.all.map { rule in
            .object(JSONObject([
                ("id", .string(rule.id)),
                ("shortDescription", .object(JSONObject([("text", .string(rule.summary))]))),
                ("defaultConfiguration", .object(JSONObject([("level", .string(rule.severity.rawValue))]))),
            ]))
        }
        let results: [JSONValue] = r.findings.map { f in
            var physical = JSONObject([("artifactLocation", .object(JSONObject([("uri", .string(f.source == "-" || f.source == nil ? "stdin" : f.source!))])))])
            if let line = f.line { physical["region"] = .object(JSONObject([("startLine", .number(String(line)))])) }
            var location = JSONObject([("physicalLocation", .object(physical))])
            if let obj = f.object {
                let name = [obj.kind, obj.namespace, obj.name].compactMap { $0 }.joined(separator: "/") + (f.field.map { "." + $0 } ?? "")
                location["logicalLocations"] = .array([.object(JSONObject([("fullyQualifiedName", .string(name)), ("kind", .string("object"))]))])
            }
            var properties = JSONObject()
            if let d = f.document { properties["document"] = .number(String(d)) }
            if let field = f.field { properties["field"] = .string(field) }
            var result = JSONObject([
                ("ruleId", .string(f.rule)),
                ("ruleIndex", .number(String(ValidationRule.all.firstIndex { $0.id == f.rule } ?? 0))),
                ("level", .string(f.severity.rawValue)),
                ("message", .object(JSONObject([("text", .string(f.message))]))),
                ("locations", .array([.object(location)])),
            ])
            if !properties.isEmpty { result["properties"] = .object(properties) }
            return .object(result)
        }
        let driver = JSONObject([
            ("name", .string("dynsecret")),
            ("version", .string(DynSecretVersion.number)),
            ("rules", .array(rules)),
        ])
        let run = JSONObject([("tool", .object(JSONObject([("driver", .object(driver))]))), ("results", .array(results))])
        return .object(JSONObject([
            ("$schema", .string("https://json.schemastore.org/sarif-2.1.0.json")),
            ("version", .string("2.1.0")),
            ("runs", .array([.object(run)])),
        ]))
    }
}
