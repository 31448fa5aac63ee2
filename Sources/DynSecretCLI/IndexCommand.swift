internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretKube
internal import Foundation

/// Reads pull secrets (and ServiceAccounts) from `-f` inputs into a registry index, parsing on all cores.
struct PullSecretInputs: Sendable {
    var index: RegistryIndex
    var serviceAccounts: [String: ServiceAccount] = [:]
    var inputErrors: [ManifestError] = []

    /// `forLookup` keeps credentials and ServiceAccounts (for `which`); a plain index needs neither.
    static func read(files: [String], defaultNamespace: String, forLookup: Bool) async throws(CLIError) -> PullSecretInputs {
        var total = PullSecretInputs(index: RegistryIndex(keepCredentials: forLookup))
        for file in try ManifestInputs.files(files) {
            let bytes: [UInt8]
            do {
                bytes = try Input.read(file, what: "-f", kind: .manifests)
            } catch {
                total.inputErrors.append(ManifestError(error.message.replacingOccurrences(of: "-f \(file): ", with: ""), source: file))
                continue
            }
            let parts = await ManifestReader.reduceDocuments(bytes, source: file, workers: ProcessInfo.processInfo.activeProcessorCount,
                                                             initial: { PullSecretInputs(index: RegistryIndex(keepCredentials: forLookup)) }) { acc, result in
                acc.add(result, defaultNamespace: defaultNamespace, forLookup: forLookup)
            }
            for part in parts {
                total.index.merge(part.index)
                total.serviceAccounts.merge(part.serviceAccounts) { _, new in new }
                total.inputErrors += part.inputErrors
            }
        }
        return total
    }

    /// Adds pull secrets read from the cluster.
    mutating func add(cluster documents: [ManifestDocument], defaultNamespace: String, forLookup: Bool) {
        for doc in documents { add(.success(doc), defaultNamespace: defaultNamespace, forLookup: forLookup) }
    }

    mutating func add(_ result: Result<ManifestDocument, ManifestError>, defaultNamespace: String, forLookup: Bool) {
        let doc: ManifestDocument
        switch result {
        case .success(let d): doc = d
        case .failure(let e):
            inputErrors.append(e)
            return
        }
        for (value, _) in doc.objects {
            guard case .object(let o) = value, o["apiVersion"]?.stringValue == "v1" else { continue }
            switch o["kind"]?.stringValue {
            case "Secret":
                // Only the pull-secret types matter; others are skipped before any decoding.
                let type = o["type"]?.stringValue ?? ""
                guard type == SecretType.dockerConfigJSON || type == SecretType.dockercfg else { continue }
                do throws(ManifestError) {
                    index.add(try Secret.decodePullSecretFields(value), defaultNamespace: defaultNamespace, source: doc.source, document: doc.index)
                } catch {
                    index.addProblem(namespace: o["metadata"]?["namespace"]?.stringValue ?? defaultNamespace,
                                     name: o["metadata"]?["name"]?.stringValue ?? "", message: (error.field.map { "\($0): " } ?? "") + error.message,
                                     source: doc.source, document: doc.index)
                }
            case "ServiceAccount" where forLookup:
                if let sa = try? ServiceAccount.decode(value).serviceAccount {
                    serviceAccounts["\(sa.metadata.namespace ?? defaultNamespace)/\(sa.metadata.name ?? "")"] = sa
                }
            default:
                continue
            }
        }
    }

    /// Input errors and malformed pull secrets, one line each on stderr.
    func reportProblems() {
        for e in inputErrors { CommandIO.current.writeStderr("error: \(e.description)\n") }
        for p in index.problems {
            let location = [p.source, p.document.map { "document \($0)" }].compactMap { $0 }.joined(separator: ": ")
            CommandIO.current.writeStderr("error: \(location): Secret \(p.namespace)/\(p.name): malformed pull secret, skipped: \(p.message)\n")
        }
    }
}

/// `dynsecret index`: which pull secrets cover which registries, per namespace.
struct IndexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "List, per namespace, each registry key and the pull secrets that cover it.",
        discussion: """
            Keys are normalized as the kubelet normalizes them and listed in the order the kubelet tries them. \
            A malformed pull secret is reported on stderr and skipped; the rest is still listed (exit status 1).
            With --cluster the pull secrets are read from the cluster (listed with a field selector on type), in
            the namespace given by -n (default: the context's) or in all namespaces with -A.
            """
    )

    @Option(name: [.short, .customLong("filename")], help: ArgumentHelp("Manifest file or directory (- for stdin); repeatable.", valueName: "path"))
    var filenames: [String] = []

    @Argument(help: ArgumentHelp("More manifest files or directories (as pre-commit passes them).", valueName: "path"))
    var paths: [String] = []

    var files: [String] { filenames + paths }

    @Option(name: [.short, .long], help: "Namespace of Secrets that name none; with --cluster, the namespace to read.")
    var namespace: String?

    @Flag(name: .customLong("cluster"), help: "Read the pull secrets from the cluster.")
    var cluster = false

    @Flag(name: [.customShort("A"), .customLong("all-namespaces")], help: "With --cluster: every namespace.")
    var allNamespaces = false

    @OptionGroup var connection: ClusterConnection

    @Option(name: [.short, .long], help: "Output format.")
    var output: ListFormat = .text

    func validate() throws {
        if files.isEmpty && !cluster { throw ValidationError("give the manifests with -f PATH (- for stdin), or --cluster") }
        if allNamespaces && !cluster { throw ValidationError("-A needs --cluster") }
    }

    func run() async throws {
        var inputs = try await PullSecretInputs.read(files: files, defaultNamespace: namespace ?? "default", forLookup: false)
        if cluster {
            let client = try connection.client(namespace: namespace)
            let docs = try await ClusterReader.pullSecretDocuments(client, namespace: allNamespaces ? nil : client.config.namespace)
            inputs.add(cluster: docs, defaultNamespace: client.config.namespace, forLookup: false)
        }
        let index = inputs.index
        var out: [UInt8] = []
        switch output {
        case .json:
            var namespaces: [JSONValue] = []
            for ns in index.namespaces.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                let registries: [JSONValue] = index.keys(in: ns).map { key in
                    .object(JSONObject([
                        ("key", .string(key)),
                        ("secrets", .array(index.namespaces[ns]![key]!.map { h in
                            .object(JSONObject([("name", .string(h.secret)), ("configKey", .string(h.configKey))]))
                        })),
                    ]))
                }
                namespaces.append(.object(JSONObject([("namespace", .string(ns)), ("registries", .array(registries))])))
            }
            let problems: [JSONValue] = index.problems.map { p in
                var o = JSONObject([("namespace", .string(p.namespace)), ("name", .string(p.name)), ("message", .string(p.message))])
                if let s = p.source { o["source"] = .string(s) }
                if let d = p.document { o["document"] = .number(String(d)) }
                return .object(o)
            }
            out = GoJSONWriter.indented(.object(JSONObject([
                ("pullSecrets", .number(String(index.secretCount))),
                ("namespaces", .array(namespaces)),
                ("problems", .array(problems)),
            ])))
        case .text:
            var rows: [[String]] = [["NAMESPACE", "REGISTRY", "SECRETS"]]
            for ns in index.namespaces.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                for key in index.keys(in: ns) {
                    let holders = index.namespaces[ns]![key]!.map { $0.configKey == key ? $0.secret : "\($0.secret) (\($0.configKey))" }
                    rows.append([ns, key, holders.joined(separator: ", ")])
                }
            }
            out = Array(Table.render(rows).utf8)
        }
        CommandIO.current.writeStdout(out)
        if index.secretCount == 0 && index.problems.isEmpty && inputs.inputErrors.isEmpty {
            // An empty table says nothing about why: say where dynsecret looked and what counts.
            let scope = cluster ? (allNamespaces ? "in any namespace of the cluster" : "in namespace \(namespace ?? "of the context") of the cluster") : "in the input"
            CommandIO.current.warn("no pull secrets \(scope): the kubelet uses only Secrets of type kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg")
        }
        inputs.reportProblems()
        if !inputs.inputErrors.isEmpty { throw ExitCode(ExitStatus.usage) }
        if !index.problems.isEmpty { throw ExitCode(ExitStatus.findings) }
    }
}

/// `-o` choices for listing commands.
enum ListFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

/// Left-aligned columns separated by two spaces, as kubectl prints tables.
enum Table {
    static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for row in rows {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += cell
                if i < row.count - 1 { line += String(repeating: " ", count: widths[i] - cell.count + 3) }
            }
            out += line + "\n"
        }
        return out
    }
}
