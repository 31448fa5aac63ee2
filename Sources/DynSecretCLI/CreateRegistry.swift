internal import ArgumentParser
internal import DynSecretCore
internal import Foundation
internal import DynSecretKube

/// `dynsecret create-registry`: a `kubernetes.io/dockerconfigjson` Secret from credentials.
struct CreateRegistry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-registry",
        abstract: "Print a kubernetes.io/dockerconfigjson pull secret for one or more registries.",
        discussion: """
            Output matches 'kubectl create secret docker-registry --dry-run=client' for the same input, \
            with Docker Hub names (docker.io, index.docker.io, registry-1.docker.io) written as \
            https://index.docker.io/v1/, and several registries allowed in one Secret.

            Every --server gets the --username credentials. --from-docker-config imports the credentials \
            stored in a Docker CLI config; with --server and no --username it imports only those servers. \
            --merge-into adds or replaces registries in an existing Secret manifest and prints the result.

            Give the password on standard input (--password-stdin) or in a file (--password-file); \
            --password works but leaves it in shell history and process lists.

            Short-lived cloud tokens are minted instead of given: --from-ecr (ECR GetAuthorizationToken with the \
            AWS default credential chain; the registry is the token's proxy endpoint), --from-google (an access \
            token from Google Application Default Credentials, for each --registry), --from-provider (a kubelet \
            credential provider plugin, asked about --image). The token is written into the Secret only; it \
            expires (ECR after 12 h, Google after about 1 h): let the controller keep copies current instead.

            Examples:
              echo "$TOKEN" | dynsecret create-registry regcred -n team-a \\
                  --server ghcr.io --username bot --password-stdin
              dynsecret create-registry regcred -o json \\
                  --from-docker-config ~/.docker/config.json
              dynsecret create-registry --merge-into regcred.yaml \\
                  --server nvcr.io --username '$oauthtoken' --password-file ngc.key
              echo "$TOKEN" | dynsecret create-registry regcred --verify \\
                  --server registry.example.com --username ci --password-stdin
              dynsecret create-registry ecr-pull --from-ecr --region us-east-1
              dynsecret create-registry gar-pull --from-google --registry us-docker.pkg.dev
              dynsecret create-registry acr-pull --from-provider /usr/local/bin/acr-credential-provider \\
                  --provider-arg /etc/kubernetes/azure.json --image myreg.azurecr.io/app:1
            """
    )

    @Argument(help: "Name of the Secret (a DNS-1123 subdomain). Optional with --merge-into.")
    var name: String?

    @Option(name: [.customLong("server"), .customLong("docker-server")],
            help: ArgumentHelp("Registry server; repeat for several (default: \(RegistryServer.dockerHubKey)).", valueName: "server"))
    var servers: [String] = []

    @Option(name: [.customLong("username"), .customLong("docker-username")], help: "Registry username.")
    var username: String?

    @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input.")
    var passwordStdin = false

    @Option(name: .customLong("password-file"), help: ArgumentHelp("Read the password from a file.", valueName: "path"))
    var passwordFile: String?

    @Option(name: [.customLong("password"), .customLong("docker-password")],
            help: "The password itself (discouraged: it lands in shell history and process lists).")
    var password: String?

    @Option(name: [.customLong("email"), .customLong("docker-email")], help: "Email written into the entry (optional).")
    var email: String = ""

    @Option(name: [.short, .long], help: "Namespace of the Secret.")
    var namespace: String?

    @Option(name: [.short, .long], help: "Output format.")
    var output: ObjectOutputFormat = .yaml

    @Option(name: .customLong("from-docker-config"), help: ArgumentHelp("Import the credentials of a Docker CLI config file.", valueName: "path"))
    var fromDockerConfig: String?

    @Option(name: .customLong("merge-into"), help: ArgumentHelp("Add or replace registries in this Secret manifest (- for stdin) and print the result.", valueName: "file"))
    var mergeInto: String?

    @Flag(name: .customLong("from-ecr"), help: "Mint an ECR token (GetAuthorizationToken, AWS default credential chain).")
    var fromECR = false

    @Option(name: .customLong("region"), help: ArgumentHelp("AWS region of the registry, with --from-ecr.", valueName: "region"))
    var region: String?

    @Option(name: .customLong("registry-id"), help: ArgumentHelp("ECR registry (AWS account ID), with --from-ecr; repeatable (default: the caller's account).", valueName: "id"))
    var registryIDs: [String] = []

    @Flag(name: .customLong("from-google"), help: "Mint a Google access token (Application Default Credentials) for each --registry.")
    var fromGoogle = false

    @Option(name: .customLong("registry"), help: ArgumentHelp("Registry host, with --from-google; repeatable (us-docker.pkg.dev, gcr.io, ...).", valueName: "host"))
    var googleRegistries: [String] = []

    @Option(name: .customLong("from-provider"), help: ArgumentHelp("Run this kubelet credential provider plugin and use what it answers.", valueName: "plugin"))
    var fromProvider: String?

    @Option(name: .customLong("provider-arg"), help: ArgumentHelp("An argument of the --from-provider plugin; repeatable.", valueName: "arg"))
    var providerArgs: [String] = []

    @Option(name: .customLong("image"), help: ArgumentHelp("The image the --from-provider plugin is asked about.", valueName: "image"))
    var image: String?

    @Flag(name: .customLong("apply"), help: "Create the Secret in the cluster, or update it there, instead of printing it.")
    var apply = false

    @OptionGroup var connection: ClusterConnection

    @Flag(name: .customLong("verify"), help: "Check the credentials against their registries first; refuse to print or apply the Secret when one fails.")
    var verify = false

    @Flag(name: .customLong("no-verify-fail"), help: "With --verify: print or apply the Secret even when a check fails.")
    var noVerifyFail = false

    @OptionGroup var registry: RegistryOptions

    func validate() throws {
        if noVerifyFail && !verify { throw ValidationError("--no-verify-fail needs --verify") }
        let minters = [fromECR, fromGoogle, fromProvider != nil].filter { $0 }.count
        if minters > 1 { throw ValidationError("give one of --from-ecr, --from-google and --from-provider") }
        if minters == 1 {
            if username != nil || passwordStdin || passwordFile != nil || password != nil || fromDockerConfig != nil || !servers.isEmpty {
                throw ValidationError("a minted credential brings its own registries and token: --from-ecr, --from-google and --from-provider take no --server, --username, password or --from-docker-config")
            }
        }
        if fromECR && region == nil { throw ValidationError("--from-ecr needs --region") }
        if !fromECR && (region != nil || !registryIDs.isEmpty) { throw ValidationError("--region and --registry-id go with --from-ecr") }
        if fromGoogle && googleRegistries.isEmpty { throw ValidationError("--from-google needs --registry (the registry hosts the token is for)") }
        if !fromGoogle && !googleRegistries.isEmpty { throw ValidationError("--registry goes with --from-google") }
        if fromProvider != nil && image == nil { throw ValidationError("--from-provider needs --image (the plugin is asked about an image, as the kubelet asks)") }
        if fromProvider == nil && (image != nil || !providerArgs.isEmpty) { throw ValidationError("--image and --provider-arg go with --from-provider") }
        try registry.check()
        let passwordSources = [passwordStdin, passwordFile != nil, password != nil].filter { $0 }.count
        if passwordSources > 1 {
            throw ValidationError("give the password only once: --password-stdin, --password-file or --password")
        }
        if passwordStdin && (mergeInto == "-" || fromDockerConfig == "-" || passwordFile == "-") {
            throw ValidationError("standard input can feed only one of --password-stdin, --merge-into - and --from-docker-config -")
        }
        if mergeInto == "-" && fromDockerConfig == "-" {
            throw ValidationError("standard input can feed only one of --merge-into - and --from-docker-config -")
        }
    }

    func run() async throws {
        let io = CommandIO.current
        if password != nil {
            io.warn("--password leaves the password in shell history and process lists; use --password-stdin or --password-file")
        }
        let secret = try build(minted: try await mint())
        if verify { try await verifyCredentials(of: secret) }
        guard apply else {
            io.writeStdout(output.render(secret))
            return
        }
        let client = try connection.client(namespace: namespace)
        let result: ApplyResult
        do {
            result = try await client.apply(secret)
        } catch {
            throw error.cli("applying Secret \(secret.metadata.namespace ?? client.config.namespace)/\(secret.metadata.name ?? "")")
        }
        io.writeStdout(Array("secret/\(secret.metadata.name ?? "") \(result.verb)\n".utf8))
    }

    /// Checks every registry credential of `secret`; reports on standard error and throws (exit 1) when one fails,
    /// unless `--no-verify-fail`.
    func verifyCredentials(of secret: Secret) async throws(CLIError) {
        let credentials = try Verify.credentials(of: secret, namespace: secret.metadata.namespace ?? "", where: "the Secret")
        let results = await RegistryVerification.logins(credentials, client: try registry.client(concurrency: credentials.count))
        let io = CommandIO.current
        for r in results {
            io.writeStderr("verify: \(r.check.status.rawValue) \(r.credential.key) (\(r.check.registry)) in \(RegistryVerification.seconds(r.check.elapsed)): \(r.check.message)\n")
        }
        let failed = results.filter { !$0.check.status.succeeded }
        guard !failed.isEmpty else { return }
        let names = failed.map(\.credential.key).joined(separator: ", ")
        if noVerifyFail {
            io.warn("--verify: the credentials for \(names) failed; continuing because of --no-verify-fail")
            return
        }
        throw CLIError("--verify: the credentials for \(names) failed; the Secret is not \(apply ? "applied" : "printed") (--no-verify-fail overrides)",
                       exitCode: ExitStatus.findings)
    }

    /// The credential the `--from-*` flag names, minted once (nil without one). The source is checked as a policy's
    /// `spec.credentials` entry would be.
    func mint() async throws(CLIError) -> MintedCredential? {
        let provider: MintedCredentialSource.Provider
        if fromECR, let region {
            guard MintedCredentialSource.isAWSRegion(region) else { throw CLIError("--region \(KubeNames.goQuote(region)): not an AWS region (e.g. us-east-1)") }
            for id in registryIDs where id.count != 12 || !id.allSatisfy({ $0.isASCII && $0.isNumber }) {
                throw CLIError("--registry-id \(KubeNames.goQuote(id)): a registry ID is a 12-digit AWS account ID")
            }
            provider = .ecr(.init(region: region, registryIDs: registryIDs))
        } else if fromGoogle {
            for host in googleRegistries where !MintedCredentialSource.isRegistryHost(host) {
                throw CLIError("--registry \(KubeNames.goQuote(host)): a registry host name (e.g. us-docker.pkg.dev)")
            }
            provider = .google(.init(registries: googleRegistries))
        } else if let fromProvider, let image {
            provider = .exec(.init(command: fromProvider, args: providerArgs, image: image))
        } else {
            return nil
        }
        let source = MintedCredentialSource(name: "create-registry", provider: provider)
        do throws(KubeError) {
            let m = try await source.mint(environment: CommandIO.current.environment)
            let expires = RFC3339.format(Int64(Date().timeIntervalSince1970) + m.lifetime.components.seconds)
            CommandIO.current.writeStderr("minted \(m.auths.keys.sorted(by: utf8Less).joined(separator: ", "))\(m.origin.isEmpty ? "" : " (\(m.origin))"), expires \(expires)\n")
            return m
        } catch {
            throw CLIError("--from-\(provider.kind == "exec" ? "provider" : provider.kind): \(error.message.replacingOccurrences(of: "credential create-registry: ", with: ""))")
        }
    }

    /// Everything is read and checked before anything is printed.
    func build(minted: MintedCredential? = nil) throws(CLIError) -> Secret {
        // The Secret to start from.
        var base: Secret?
        var config = DockerConfigJSON()
        if let mergeInto {
            let (secret, payload) = try Self.readMergeTarget(mergeInto)
            base = secret
            config = payload
        }
        let secretName = try resolveName(base: base)
        let secretNamespace = namespace ?? base?.metadata.namespace
        let nameErrors = KubeNames.objectNameErrors(name: secretName, namespace: secretNamespace)
        if !nameErrors.isEmpty {
            throw CLIError(KubeNames.invalidMessage(kind: "Secret", name: secretName, errors: nameErrors))
        }

        let explicit = try explicitCredential()
        let keys = try serverKeys()

        if let fromDockerConfig {
            let imported = try DockerCLIConfigImport.load(fromDockerConfig, flag: "--from-docker-config")
            if explicit == nil && !keys.isEmpty {
                for key in keys {
                    guard let found = imported.credentials.first(where: { $0.key == key }) else {
                        throw CLIError("--from-docker-config \(fromDockerConfig): no usable credentials for \(key)")
                    }
                    config.set(found.credential, for: key)
                }
            } else {
                for (key, credential) in imported.credentials { config.set(credential, for: key) }
            }
        } else if let minted {
            for key in minted.auths.keys.sorted(by: utf8Less) { config.set(minted.auths[key]!, for: key) }
        } else if explicit == nil && mergeInto == nil {
            throw CLIError("--username and a password (--password-stdin, --password-file or --password) are required, or --from-docker-config, --from-ecr, --from-google or --from-provider")
        } else if explicit == nil {
            throw CLIError("--merge-into needs the credentials to add: --username and a password (--password-stdin, --password-file or --password), or --from-docker-config")
        }
        if let explicit {
            for key in keys.isEmpty ? [RegistryServer.dockerHubKey] : keys { config.set(explicit, for: key) }
        }

        var secret = base ?? Secret(metadata: ObjectMeta(name: secretName, namespace: secretNamespace), type: SecretType.dockerConfigJSON)
        secret.metadata.name = secretName
        secret.metadata.namespace = secretNamespace
        secret.data[".dockerconfigjson"] = config.bytes
        try Self.refuseInvalid(secret, source: mergeInto ?? "create-registry")
        return secret
    }

    /// What is printed passes `validate`'s checks (the API server's Secret rules and size limit, the kubelet's
    /// decoding of every entry), or the command refuses with the findings and prints nothing (exit 1). A merged
    /// Secret carries the entries it was given, so it is where a bad one shows.
    static func refuseInvalid(_ secret: Secret, source: String) throws(CLIError) {
        let doc = ManifestDocument(source: source, index: 1, line: 1, value: secret.json)
        let report = Validator(options: ValidationOptions(now: Int64(Date().timeIntervalSince1970)), inspector: nil).validate([doc])
        let errors = report.findings.filter { $0.severity == .error }
        guard !errors.isEmpty else { return }
        throw CLIError("the resulting Secret would not work, nothing written:\n" + errors.map { "  " + $0.text }.joined(separator: "\n"),
                       exitCode: ExitStatus.findings)
    }

    private func resolveName(base: Secret?) throws(CLIError) -> String {
        switch (name, base?.metadata.name) {
        case (let given?, let existing?) where given != existing:
            throw CLIError("NAME \(KubeNames.goQuote(given)) differs from the name \(KubeNames.goQuote(existing)) in --merge-into \(mergeInto ?? "")")
        case (let given?, _): return given
        case (nil, let existing?): return existing
        case (nil, nil): throw CLIError("a Secret NAME is required")
        }
    }

    /// The `--server` values as `auths` keys, in order, without duplicates.
    private func serverKeys() throws(CLIError) -> [String] {
        var keys: [String] = []
        for server in servers {
            let key: String
            do {
                key = try RegistryServer.authKey(for: server)
            } catch {
                throw CLIError("--server: \(error.message)")
            }
            if !keys.contains(key) { keys.append(key) }
        }
        return keys
    }

    /// The credential given by --username and a password option, or nil when neither is given.
    private func explicitCredential() throws(CLIError) -> RegistryCredential? {
        let secretGiven = passwordStdin || passwordFile != nil || password != nil
        guard username != nil || secretGiven else { return nil }
        guard let username, !username.isEmpty else {
            throw CLIError("--username is required with a password")
        }
        do {
            // Checked before the password is read, so a bad username never consumes stdin.
            try RegistryCredential(username: username, password: "-").validate()
        } catch {
            throw CLIError(error.message)
        }
        let pw: String
        if passwordStdin {
            pw = try Input.password(from: try Input.read("-", what: "--password-stdin", kind: .password), what: "--password-stdin")
        } else if let passwordFile {
            pw = try Input.password(from: try Input.read(passwordFile, what: "--password-file", kind: .password), what: "--password-file \(passwordFile)")
            Input.warnIfShared(passwordFile, what: "--password-file")
        } else if let password {
            pw = password
        } else {
            throw CLIError("a password is required: --password-stdin, --password-file or --password")
        }
        let credential = RegistryCredential(username: username, password: pw, email: email)
        do {
            try credential.validate()
        } catch {
            throw CLIError(error.message)
        }
        return credential
    }

    /// Reads the Secret manifest given to --merge-into: exactly one `kubernetes.io/dockerconfigjson` Secret.
    static func readMergeTarget(_ path: String) throws(CLIError) -> (Secret, DockerConfigJSON) {
        let bytes = try Input.read(path, what: "--merge-into", kind: .document)
        do {
            let (secret, config) = try parseMergeTarget(bytes, source: path)
            if secret.immutable == true {
                CommandIO.current.warn("--merge-into \(path): the Secret is immutable; the cluster will refuse an update (delete and re-create it)")
            }
            return (secret, config)
        } catch {
            throw CLIError("--merge-into: \(error.description)")
        }
    }

    static func parseMergeTarget(_ bytes: [UInt8], source: String) throws(ManifestError) -> (Secret, DockerConfigJSON) {
        let docs = try ManifestReader.read(bytes, source: source)
        guard docs.count == 1, let doc = docs.first else {
            throw ManifestError("expected exactly one Secret, found \(docs.count) documents", source: source)
        }
        func locate(_ e: ManifestError) -> ManifestError { e.located(source: source, document: doc.index, line: doc.line) }
        var secret: Secret
        do throws(ManifestError) {
            let decoded = try Secret.decode(doc.value)
            if let field = decoded.unknownFields.first { throw ManifestError("unknown field", field: field) }
            secret = decoded.secret
        } catch {
            throw locate(error)
        }
        guard secret.effectiveType == SecretType.dockerConfigJSON else {
            throw locate(ManifestError("Secret type is \(KubeNames.goQuote(secret.effectiveType)); only \(SecretType.dockerConfigJSON) Secrets can be merged into", field: "type"))
        }
        guard let payload = secret.mergedData[".dockerconfigjson"] else {
            throw locate(ManifestError("Required value", field: "data[.dockerconfigjson]"))
        }
        let config: DockerConfigJSON
        do throws(ManifestError) {
            config = try DockerConfigJSON.parse(payload)
        } catch {
            throw locate(ManifestError(error.message, field: "data[.dockerconfigjson]" + (error.field.map { "." + $0 } ?? "")))
        }
        // The merged payload goes into data; a stringData copy would override it on write.
        secret.stringData[".dockerconfigjson"] = nil
        return (secret, config)
    }
}
