internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretKube

/// `dynsecret which`: the credentials the kubelet would try for an image, in order, and why.
struct Which: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show which pull secrets the kubelet would try for an image in a namespace, in order, and why.",
        discussion: """
            The pod's pull secrets are --pull-secret NAME (as in the pod's imagePullSecrets) or, when none is \
            given, the ServiceAccount's imagePullSecrets, as the ServiceAccount admission plugin sets them.

            Example:
              dynsecret which nvcr.io/nvidia/tritonserver:24.08-py3 -n inference -f secrets/ -f serviceaccounts.yaml
            """
    )

    @Argument(help: "Image reference, as written in a pod.")
    var image: String

    @Option(name: [.short, .long], help: "Namespace of the pod (default: default, or the context's with --cluster).")
    var namespace: String?

    @Flag(name: .customLong("cluster"), help: "Read the namespace's pull secrets and the ServiceAccount from the cluster.")
    var cluster = false

    @OptionGroup var connection: ClusterConnection

    @Option(name: .customLong("service-account"), help: "ServiceAccount of the pod.")
    var serviceAccount = "default"

    @Option(name: .customLong("pull-secret"), help: ArgumentHelp("The pod's own imagePullSecrets entry; repeatable.", valueName: "name"))
    var pullSecrets: [String] = []

    @Option(name: [.short, .customLong("filename")], help: ArgumentHelp("Manifest file or directory with the Secrets (- for stdin); repeatable.", valueName: "path"))
    var files: [String] = []

    @Option(name: [.short, .long], help: "Output format.")
    var output: ListFormat = .text

    func validate() throws {
        if files.isEmpty && !cluster { throw ValidationError("give the manifests holding the Secrets with -f PATH (- for stdin), or --cluster") }
    }

    func run() async throws {
        let ref: ImageReference
        do {
            ref = try ImageReference.parse(image)
        } catch {
            throw CLIError("couldn't parse image name \(KubeNames.goQuote(image)): \(error.message)")
        }
        var namespace = self.namespace ?? "default"
        var inputs = try await PullSecretInputs.read(files: files, defaultNamespace: namespace, forLookup: true)
        if cluster {
            let client = try connection.client(namespace: self.namespace)
            namespace = client.config.namespace
            inputs.add(cluster: try await ClusterReader.pullSecretDocuments(client, namespace: namespace), defaultNamespace: namespace, forLookup: true)
            if pullSecrets.isEmpty, let sa = try await ClusterReader.serviceAccount(client, namespace: namespace, name: serviceAccount) {
                inputs.serviceAccounts["\(namespace)/\(serviceAccount)"] = sa
            }
        }
        var names = pullSecrets
        var origin = "--pull-secret"
        if names.isEmpty {
            origin = "ServiceAccount \(namespace)/\(serviceAccount)"
            if let sa = inputs.serviceAccounts["\(namespace)/\(serviceAccount)"] {
                names = sa.imagePullSecrets
            } else if serviceAccount != "default" {
                CommandIO.current.warn("ServiceAccount \(namespace)/\(serviceAccount) is not in the input; assuming it has no imagePullSecrets")
            }
        }
        var notes: [String] = []
        for name in names where !inputs.index.hasPullSecret(name, in: namespace) {
            let malformed = inputs.index.problems.contains { $0.namespace == namespace && $0.name == name }
            notes.append(malformed
                ? "pull secret \(name) is malformed: the kubelet fails every image pull of the pod"
                : "pull secret \(name) is not a pull secret in the input (missing or another type): the kubelet skips it")
        }
        let matches = inputs.index.lookup(image: ref, namespace: namespace, pullSecrets: names)
        // Nothing the pod lists matches: the namespace's pull secrets that would, had the pod listed them.
        let candidates = matches.isEmpty ? inputs.index.candidates(image: ref, namespace: namespace, excluding: names) : []
        let addTo = pullSecrets.isEmpty ? "the pod, or to ServiceAccount \(namespace)/\(serviceAccount)" : "the pod"
        var out: [UInt8]
        switch output {
        case .json:
            let tries: [JSONValue] = matches.map { m in
                .object(JSONObject([
                    ("secret", .string(m.entry.source.secretName)),
                    ("configKey", .string(m.entry.source.registryKey)),
                    ("key", .string(m.entry.key)),
                    ("reason", .string(m.reason.rawValue)),
                    ("username", .string(m.entry.credential.username)),
                ]))
            }
            out = GoJSONWriter.indented(.object(JSONObject([
                ("image", .string(image)),
                ("repository", .string(ref.name)),
                ("namespace", .string(namespace)),
                ("pullSecrets", .array(names.map(JSONValue.string))),
                ("pullSecretsFrom", .string(origin)),
                ("credentials", .array(tries)),
                ("notes", .array(notes.map(JSONValue.string))),
                ("candidates", .array(candidates.map { c in
                    .object(JSONObject([
                        ("secret", .string(c.secret)),
                        ("configKey", .string(c.configKey)),
                        ("imagePullSecrets", .array([.object(JSONObject([("name", .string(c.secret))]))])),
                    ]))
                })),
            ])))
        case .text:
            var text = "image \(image) is looked up as \(ref.name)\n"
            text += "pull secrets (\(origin)): \(names.isEmpty ? "none" : names.joined(separator: ", "))\n"
            for n in notes { text += "note: \(n)\n" }
            if matches.isEmpty {
                text += "no credential matches: the kubelet pulls anonymously\n"
                for c in candidates {
                    text += "hint: pull secret \(c.secret) in \(namespace) has key \(c.configKey), which matches; to use it, add to \(addTo):\n"
                    text += "  imagePullSecrets: [\(c.imagePullSecretsEntry)]\n"
                }
            } else {
                for (i, m) in matches.enumerated() {
                    let why = m.reason == .key
                        ? "key \(m.entry.key) matches"
                        : "no key matches; Docker Hub fallback to \(m.entry.key)"
                    text += "\(i + 1). \(m.entry.source.secretName) [\(m.entry.source.registryKey)] user \(m.entry.credential.username): \(why)\n"
                }
            }
            out = Array(text.utf8)
        }
        CommandIO.current.writeStdout(out)
        inputs.reportProblems()
        if !inputs.inputErrors.isEmpty { throw ExitCode(ExitStatus.usage) }
    }
}
