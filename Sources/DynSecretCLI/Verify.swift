internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretKube
internal import Foundation

/// `dynsecret verify`: asks the registries whether pull-secret credentials work, and whether images can be pulled.
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check pull-secret credentials against their registries, or pull access for images.",
        discussion: """
            Asks each registry over the distribution API, as a container runtime does: GET /v2/, the \
            WWW-Authenticate challenge (Basic, or a Bearer token from the realm), and with --image a HEAD of the \
            image's manifest with the repository:NAME:pull scope. With --image, the credentials the kubelet would \
            pick for the image are tried in its order until one works. Registries are checked concurrently.

            Status per registry or image: ok, anonymous, unauthorized, denied, not-found, unreachable, tls-error.
            Exit status: 0 all ok (or anonymous), 1 otherwise, 2 usage or input error.

            Examples:
              dynsecret verify -f regcred.yaml
              dynsecret verify --cluster -n team-a regcred --image ghcr.io/team-a/api:1.4
              dynsecret verify --docker-config ~/.docker/config.json -o json
            """
    )

    @Argument(help: "Name of the Secret (required with --cluster; with -f, checks only that Secret).")
    var name: String?

    @Option(name: [.short, .customLong("filename")], help: ArgumentHelp("Manifest file or directory with pull secrets (- for stdin); repeatable.", valueName: "path"))
    var files: [String] = []

    @Flag(name: .customLong("cluster"), help: "Read the Secret NAME from the cluster.")
    var cluster = false

    @OptionGroup var connection: ClusterConnection

    @Option(name: [.short, .long], help: "Namespace of the Secret (default: the context's with --cluster).")
    var namespace: String?

    @Option(name: .customLong("docker-config"), help: ArgumentHelp("Check the credentials of a Docker CLI config file.", valueName: "path"))
    var dockerConfig: String?

    @Option(name: .customLong("image"), help: ArgumentHelp("Check pull access for this image with the credential the kubelet would pick; repeatable.", valueName: "image"))
    var images: [String] = []

    @OptionGroup var registry: RegistryOptions

    @Option(name: [.short, .long], help: "Output format.")
    var output: ListFormat = .text

    func validate() throws {
        let sources = [!files.isEmpty, cluster, dockerConfig != nil].filter { $0 }.count
        if sources == 0 { throw ValidationError("give the credentials to check: -f PATH, --cluster NAME, or --docker-config PATH") }
        if sources > 1 { throw ValidationError("give only one of -f, --cluster and --docker-config") }
        if cluster && name == nil { throw ValidationError("--cluster needs the NAME of the Secret") }
        if dockerConfig != nil && name != nil { throw ValidationError("NAME selects a Secret; it does not apply to --docker-config") }
        try registry.check()
    }

    func run() async throws {
        let credentials = try await readCredentials()
        var refs: [(text: String, ref: ImageReference)] = []
        for text in images {
            do throws(ImageReference.ParseError) {
                refs.append((text, try ImageReference.parse(text)))
            } catch {
                throw CLIError("--image: couldn't parse image name \(KubeNames.goQuote(text)): \(error.message)")
            }
        }
        let client = try registry.client(concurrency: max(credentials.count, refs.count))
        let io = CommandIO.current
        let failed: Bool
        if refs.isEmpty {
            let results = await RegistryVerification.logins(credentials, client: client)
            io.writeStdout(output == .json ? GoJSONWriter.indented(RegistryVerification.json(logins: results)) : Array(RegistryVerification.text(logins: results).utf8))
            failed = results.contains { !$0.check.status.succeeded }
        } else {
            var keyring = CredentialKeyring()
            for c in credentials { keyring.add(configKey: c.key, credential: c.credential, source: CredentialSource(namespace: c.namespace, secretName: c.secret, registryKey: c.key)) }
            let results = await RegistryVerification.pulls(refs.map { ($0.text, $0.ref, keyring.lookup($0.ref.name)) }, client: client)
            io.writeStdout(output == .json ? GoJSONWriter.indented(RegistryVerification.json(pulls: results)) : Array(RegistryVerification.text(pulls: results).utf8))
            failed = results.contains { !$0.check.status.succeeded }
        }
        if failed { throw ExitCode(ExitStatus.findings) }
    }

    /// The credentials to check, in input order (the kubelet's order within a Secret: keys sorted by bytes).
    func readCredentials() async throws(CLIError) -> [VerifyCredential] {
        if let dockerConfig {
            let imported = try DockerCLIConfigImport.load(dockerConfig, flag: "--docker-config")
            return imported.credentials.map { VerifyCredential(namespace: "", secret: dockerConfig, key: $0.key, credential: $0.credential) }
        }
        var out: [VerifyCredential] = []
        if cluster, let name {
            let client = try connection.client(namespace: namespace)
            let ns = client.config.namespace
            let secret: Secret
            do {
                secret = try await client.get(Secret.self, namespace: ns, name: name)
            } catch {
                throw error.cli("reading Secret \(ns)/\(name)")
            }
            out = try Self.credentials(of: secret, namespace: ns, where: "cluster:secret/\(ns)/\(name)")
            guard !out.isEmpty else { throw CLIError("Secret \(ns)/\(name) holds no registry credentials") }
            return out
        }
        var errors: [ManifestError] = []
        var found = 0
        try ManifestInputs.forEachDocument(files) { result in
            switch result {
            case .failure(let error): errors.append(error)
            case .success(let doc):
                for (value, prefix) in doc.objects {
                    guard value["kind"]?.stringValue == "Secret", value["apiVersion"]?.stringValue == "v1" else { continue }
                    func located(_ e: ManifestError, field: String?) -> ManifestError {
                        ManifestError(e.message, field: field.map { prefix + $0 }).located(source: doc.source, document: doc.index, line: doc.line)
                    }
                    let secret: Secret
                    do throws(ManifestError) {
                        secret = try Secret.decodePullSecretFields(value)
                    } catch {
                        errors.append(located(error, field: error.field))
                        continue
                    }
                    let secretName = secret.metadata.name ?? ""
                    if let name, name != secretName { continue }
                    let ns = secret.metadata.namespace ?? namespace ?? "default"
                    guard let payloadKey = SecretType.pullSecretKey(forType: secret.effectiveType) else {
                        if name != nil {
                            errors.append(located(ManifestError("Secret type is \(KubeNames.goQuote(secret.effectiveType)), not a pull secret type"), field: "type"))
                        }
                        continue
                    }
                    let entries: [(key: String, credential: RegistryCredential)]?
                    do throws(ManifestError) {
                        entries = try PullSecret.entries(of: secret)
                    } catch {
                        errors.append(located(error, field: "data[\(payloadKey)]" + (error.field.map { "." + $0 } ?? "")))
                        continue
                    }
                    // A pull secret without its payload is broken, not something to skip.
                    guard let entries else {
                        errors.append(located(ManifestError("Required value"), field: "data[\(payloadKey)]"))
                        continue
                    }
                    found += 1
                    out += Self.credentials(entries, namespace: ns, secret: secretName)
                }
            }
        }
        if let first = errors.first { throw CLIError(first.description) }
        if found == 0 {
            throw CLIError(name.map { "-f: no pull secret named \($0) in the input" } ?? "-f: no pull secret (kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg) in the input")
        }
        if out.isEmpty { throw CLIError("-f: the pull secrets hold no registry credentials") }
        return out
    }

    /// The credentials of the pull secret `secret` (read from `source`); anything else, or a pull secret without its
    /// payload, is an error.
    static func credentials(of secret: Secret, namespace: String, where source: String) throws(CLIError) -> [VerifyCredential] {
        guard let payloadKey = SecretType.pullSecretKey(forType: secret.effectiveType) else {
            throw CLIError("\(source): type \(KubeNames.goQuote(secret.effectiveType)) is not a pull secret type")
        }
        let entries: [(key: String, credential: RegistryCredential)]?
        do throws(ManifestError) {
            entries = try PullSecret.entries(of: secret)
        } catch {
            throw CLIError("\(source): \(error.description)")
        }
        guard let entries else { throw CLIError("\(source): data[\(payloadKey)]: Required value") }
        return credentials(entries, namespace: namespace, secret: secret.metadata.name ?? "")
    }

    /// One credential per entry, keys in the kubelet's order (sorted by bytes).
    static func credentials(_ entries: [(key: String, credential: RegistryCredential)], namespace: String, secret: String) -> [VerifyCredential] {
        entries.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }.map {
            VerifyCredential(namespace: namespace, secret: secret, key: $0.key, credential: $0.credential)
        }
    }
}

/// One credential to check and where it came from.
struct VerifyCredential: Sendable {
    var namespace: String
    var secret: String
    var key: String
    var credential: RegistryCredential
}

/// Options for commands that contact registries.
struct RegistryOptions: ParsableArguments {
    @Option(name: .customLong("registry-ca"), help: ArgumentHelp("PEM CA certificates trusted for registries, in addition to the system ones.", valueName: "file"))
    var registryCA: String?

    @Option(name: .customLong("insecure-registry"), help: ArgumentHelp("Registry host (or host:port) reached over plain HTTP or unverified TLS; repeatable.", valueName: "host"))
    var insecureRegistries: [String] = []

    @Option(name: .customLong("registry-timeout"), help: ArgumentHelp("Seconds allowed for each registry request.", valueName: "seconds"))
    var timeout: Double = 15

    func check() throws(ValidationError) {
        if !(timeout > 0 && timeout <= 600) { throw ValidationError("--registry-timeout must be between 0 and 600 seconds") }
        for host in insecureRegistries where host.isEmpty || host.contains("/") || host.contains(where: \.isWhitespace) {
            throw ValidationError("--insecure-registry \(host): give a host or host:port, without scheme or path")
        }
    }

    /// A registry client with these settings, running up to `concurrency` checks at once.
    func client(concurrency: Int) throws(CLIError) -> RegistryClient {
        var options = RegistryClientOptions()
        if let registryCA {
            let pem = try Input.read(registryCA, what: "--registry-ca", kind: .document)
            guard String(decoding: pem, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
                throw CLIError("--registry-ca \(registryCA): no PEM certificate in the file")
            }
            options.extraCAPEM = pem
        }
        options.insecureRegistries = insecureRegistries
        options.requestTimeout = .milliseconds(Int64(timeout * 1000))
        options.connectTimeout = .milliseconds(Int64(min(timeout, 10) * 1000))
        return RegistryClient(options: options, maxConcurrentRequests: min(64, max(4, concurrency)))
    }
}

/// Running checks concurrently and rendering their results.
enum RegistryVerification {
    struct Login: Sendable {
        var credential: VerifyCredential
        var check: RegistryCheck
    }

    struct Pull: Sendable {
        var image: String
        var reference: ImageReference
        /// The check that decided: the first that worked, or the last tried.
        var check: RegistryCheck
        /// The credential of `check`, nil for an anonymous pull.
        var used: CredentialKeyring.Match?
        var attempts: [(match: CredentialKeyring.Match?, check: RegistryCheck)]
        /// How many credentials the kubelet would try.
        var candidates: Int
        var elapsed: Duration
    }

    /// Checks every credential (each distinct key and credential once), all concurrently; results in input order.
    static func logins(_ credentials: [VerifyCredential], client: RegistryClient) async -> [Login] {
        await withTaskGroup(of: (Int, RegistryCheck).self) { group in
            for (i, c) in credentials.enumerated() {
                group.addTask { (i, await client.checkLogin(key: c.key, credential: c.credential)) }
            }
            var checks = [RegistryCheck?](repeating: nil, count: credentials.count)
            for await (i, check) in group { checks[i] = check }
            return zip(credentials, checks).map { Login(credential: $0, check: $1!) }
        }
    }

    /// Checks each image with the credentials the kubelet would try, in order until one works (anonymously when
    /// none matches, as the kubelet pulls then); images concurrently.
    static func pulls(_ items: [(text: String, ref: ImageReference, matches: [CredentialKeyring.Match])], client: RegistryClient) async -> [Pull] {
        await withTaskGroup(of: (Int, Pull).self) { group in
            for (i, item) in items.enumerated() {
                group.addTask {
                    let clock = ContinuousClock()
                    let start = clock.now
                    var attempts: [(match: CredentialKeyring.Match?, check: RegistryCheck)] = []
                    for match in item.matches.isEmpty ? [nil] : item.matches.map(Optional.some) {
                        let check = await client.checkPull(image: item.ref, credential: match?.entry.credential)
                        attempts.append((match, check))
                        if check.status.succeeded { break }
                    }
                    let last = attempts[attempts.count - 1]
                    return (i, Pull(image: item.text, reference: item.ref, check: last.check, used: last.match, attempts: attempts, candidates: item.matches.count, elapsed: clock.now - start))
                }
            }
            var pulls = [Pull?](repeating: nil, count: items.count)
            for await (i, pull) in group { pulls[i] = pull }
            return pulls.map { $0! }
        }
    }

    static func seconds(_ d: Duration) -> String {
        let c = d.components
        return String(format: "%.3fs", Double(c.seconds) + Double(c.attoseconds) / 1e18)
    }

    static func secondsValue(_ d: Duration) -> JSONValue {
        let c = d.components
        return .number(String(format: "%.3f", Double(c.seconds) + Double(c.attoseconds) / 1e18))
    }

    /// The username as printed: hidden when it holds the password (some registries issue a token as both).
    static func username(_ c: RegistryCredential) -> String {
        !c.password.isEmpty && c.username.contains(c.password) ? "<redacted>" : c.username
    }

    static func source(_ c: VerifyCredential) -> String {
        c.namespace.isEmpty ? c.secret : "\(c.namespace)/\(c.secret)"
    }

    static func text(logins: [Login]) -> String {
        let rows = [["STATUS", "REGISTRY", "KEY", "SECRET", "USERNAME", "TIME", "MESSAGE"]] + logins.map { l in
            [l.check.status.rawValue, l.check.registry, l.credential.key, source(l.credential), username(l.credential.credential), seconds(l.check.elapsed), l.check.message]
        }
        return Table.render(rows)
    }

    static func text(pulls: [Pull]) -> String {
        let rows = [["STATUS", "IMAGE", "REGISTRY", "CREDENTIAL", "TIME", "MESSAGE"]] + pulls.map { p in
            let tried = p.candidates > 1 ? " (credential \(p.attempts.count) of \(p.candidates))" : ""
            let credential = p.used.map { "\($0.entry.source.secretName) [\($0.entry.source.registryKey)]" } ?? "anonymous"
            return [p.check.status.rawValue, p.image, p.check.registry, credential, seconds(p.elapsed), p.check.message + tried]
        }
        return Table.render(rows)
    }

    static func checkJSON(_ c: RegistryCheck) -> [(String, JSONValue)] {
        [("status", .string(c.status.rawValue)), ("registry", .string(c.registry)), ("endpoint", c.endpoint.map(JSONValue.string) ?? .null),
         ("message", .string(c.message)), ("seconds", secondsValue(c.elapsed))]
    }

    static func summary(_ statuses: [RegistryStatus]) -> JSONValue {
        .object(JSONObject(RegistryStatus.allCases.map { s in (s.rawValue, .number(String(statuses.filter { $0 == s }.count))) }))
    }

    static func json(logins: [Login]) -> JSONValue {
        let results: [JSONValue] = logins.map { l in
            .object(JSONObject([("key", .string(l.credential.key)), ("secret", .string(source(l.credential))),
                                ("username", .string(username(l.credential.credential)))] + checkJSON(l.check)))
        }
        return .object(JSONObject([("results", .array(results)), ("summary", summary(logins.map(\.check.status)))]))
    }

    static func matchJSON(_ m: CredentialKeyring.Match?) -> JSONValue {
        guard let m else { return .null }
        return .object(JSONObject([
            ("secret", .string(m.entry.source.namespace.isEmpty ? m.entry.source.secretName : "\(m.entry.source.namespace)/\(m.entry.source.secretName)")),
            ("key", .string(m.entry.source.registryKey)), ("username", .string(username(m.entry.credential))), ("reason", .string(m.reason.rawValue)),
        ]))
    }

    static func json(pulls: [Pull]) -> JSONValue {
        let results: [JSONValue] = pulls.map { p in
            let attempts: [JSONValue] = p.attempts.map { a in .object(JSONObject([("credential", matchJSON(a.match))] + checkJSON(a.check))) }
            var fields: [(String, JSONValue)] = [("image", .string(p.image)), ("repository", .string(p.reference.name)), ("credential", matchJSON(p.used))]
            fields += checkJSON(p.check).map { $0.0 == "seconds" ? ("seconds", secondsValue(p.elapsed)) : $0 }
            fields.append(("attempts", .array(attempts)))
            return .object(JSONObject(fields))
        }
        return .object(JSONObject([("results", .array(results)), ("summary", summary(pulls.map(\.check.status)))]))
    }
}
