internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretKube

/// `dynsecret cluster`: member cluster registration.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Register member clusters for a hub's controller.",
        subcommands: [MemberKubeconfig.self]
    )
}

/// `dynsecret cluster kubeconfig`: the kubeconfig Secret a hub needs for a member, from the member's ServiceAccount
/// token Secret (`deploy/member/token.yaml`).
struct MemberKubeconfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubeconfig",
        abstract: "Print the kubeconfig Secret that registers a member cluster with a hub.",
        discussion: """
            Reads the member (kubeconfig, KUBECONFIG, ~/.kube/config; --context picks it): the ServiceAccount token \
            Secret that deploy/member creates (type kubernetes.io/service-account-token, filled by the API server's \
            token controller) for its token and CA, and takes the API server's address from the context (or \
            --server: the address the hub reaches). Prints a Secret NAME-kubeconfig for the hub's \
            --hub-namespace, holding a kubeconfig with that token under the key kubeconfig: what a policy's \
            `kubeconfigSecret` names. The output holds a credential: pipe it to `kubectl apply -f -` against the hub.

            Examples:
              dynsecret cluster kubeconfig --context prod-eu --name prod-eu | kubectl --context hub apply -f -
              dynsecret cluster kubeconfig --context gpu-7 --name gpu-7 --server https://gpu-7.internal:6443
            """
    )

    @Option(name: .long, help: ArgumentHelp("The member's name in the policy (the Secret is NAME-kubeconfig).", valueName: "name"))
    var name: String

    @Option(name: .long, help: ArgumentHelp("Namespace of the ServiceAccount in the member.", valueName: "ns"))
    var namespace = "dynsecret-system"

    @Option(name: .customLong("service-account"), help: ArgumentHelp("The ServiceAccount the hub acts as in the member.", valueName: "name"))
    var serviceAccount = "dynsecret-member"

    @Option(name: .customLong("token-secret"), help: ArgumentHelp("Its token Secret (default: SERVICE-ACCOUNT-token).", valueName: "name"))
    var tokenSecret: String?

    @Option(name: .long, help: ArgumentHelp("The member's API server address as the hub reaches it (default: the context's).", valueName: "url"))
    var server: String?

    @Option(name: .customLong("hub-namespace"), help: ArgumentHelp("Namespace of the Secret in the hub (the controller's).", valueName: "ns"))
    var hubNamespace = "dynsecret-system"

    @OptionGroup var connection: ClusterConnection

    func validate() throws {
        for (flag, value) in [("--name", name), ("--namespace", namespace), ("--hub-namespace", hubNamespace)] {
            if let p = KubeNames.dns1123LabelProblems(value).first { throw ValidationError("\(flag): \(p)") }
        }
        if let server, !(server.hasPrefix("https://") || server.hasPrefix("http://")) { throw ValidationError("--server must be an http(s) URL") }
    }

    func run() async throws {
        let client = try connection.client(namespace: namespace)
        let secretName = tokenSecret ?? serviceAccount + "-token"
        let secret: Secret
        do {
            secret = try await client.get(Secret.self, namespace: namespace, name: secretName)
        } catch {
            throw CLIError("reading Secret \(namespace)/\(secretName) in the member: \(error.message) (apply deploy/member first)")
        }
        let data = secret.mergedData
        guard secret.effectiveType == SecretType.serviceAccountToken else {
            throw CLIError("Secret \(namespace)/\(secretName) is of type \(secret.effectiveType), not \(SecretType.serviceAccountToken)")
        }
        guard secret.metadata.annotations["kubernetes.io/service-account.name"] == serviceAccount else {
            throw CLIError("Secret \(namespace)/\(secretName) is not the token of ServiceAccount \(serviceAccount) (annotation kubernetes.io/service-account.name)")
        }
        guard let token = data["token"], !token.isEmpty, let tokenText = String(validating: token, as: UTF8.self) else {
            throw CLIError("Secret \(namespace)/\(secretName) has no token yet: the member's token controller fills it shortly after it is created")
        }
        let ca = data["ca.crt"].flatMap { $0.isEmpty ? nil : $0 } ?? client.config.transport.caPEM
        var cluster = JSONObject([("server", .string(server ?? client.config.server))])
        if let ca { cluster["certificate-authority-data"] = .string(Base64.encode(ca)) }
        let kubeconfig = JSONValue.object(JSONObject([
            ("apiVersion", .string("v1")), ("kind", .string("Config")),
            ("clusters", .array([.object(JSONObject([("name", .string(name)), ("cluster", .object(cluster))]))])),
            ("users", .array([.object(JSONObject([("name", .string(serviceAccount)), ("user", .object(JSONObject([("token", .string(tokenText))])))]))])),
            ("contexts", .array([.object(JSONObject([("name", .string(name)), ("context", .object(JSONObject([
                ("cluster", .string(name)), ("user", .string(serviceAccount)),
            ])))]))])),
            ("current-context", .string(name)),
        ]))
        var meta = ObjectMeta(name: "\(name)-kubeconfig", namespace: hubNamespace)
        meta.labels = ["app.kubernetes.io/part-of": "dynsecret", "dynsecret.io/member-cluster": name]
        let out = Secret(metadata: meta, type: SecretType.opaque, data: [MemberCluster.defaultKubeconfigKey: Array(YAMLWriter.document(kubeconfig).utf8)])
        CommandIO.current.writeStdout(Array(YAMLWriter.document(out.json).utf8))
    }
}
