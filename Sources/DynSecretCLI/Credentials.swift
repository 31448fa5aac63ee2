internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretKube
internal import Foundation

/// `dynsecret credentials`: the credentials a policy mints.
struct CredentialsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credentials",
        abstract: "Mint a policy's credentials and show what they yield (never the token).",
        subcommands: [MintCommand.self]
    )
}

/// `dynsecret credentials mint`: runs each credential source of a policy once.
struct MintCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mint",
        abstract: "Mint each credential of a policy once and print its registries, usernames and lifetime.",
        discussion: """
            Runs every entry of the policy's spec.credentials (or the NAMEs given) as the controller does — a kubelet \
            credential provider plugin gets a CredentialProviderRequest on stdin and answers on stdout, within its \
            timeout — and prints, per credential, the registries it covers, the usernames, the lifetime and when it \
            would be minted again. Tokens and passwords are never printed. Exit 0 when every credential minted, 1 \
            when one failed (its error says why), 2 for a usage or policy error.

            Examples:
              dynsecret credentials mint --policy policies/minted-pull-secrets.yaml
              dynsecret credentials mint --policy policy.yaml acr -o json
            """
    )

    @Option(name: .long, help: ArgumentHelp("ReplicationPolicy file (YAML or JSON, - for stdin).", valueName: "file"))
    var policy: String

    @Argument(help: ArgumentHelp("Credentials to mint (default: all).", valueName: "name"))
    var names: [String] = []

    @Option(name: [.short, .long], help: "Output format.")
    var output: ListFormat = .text

    func run() async throws {
        let parsed = try Replicate.loadPolicy(policy)
        for n in names where !parsed.credentials.contains(where: { $0.name == n }) {
            throw CLIError("no credential \(KubeNames.goQuote(n)) in \(policy) (spec.credentials: \(parsed.credentials.map(\.name).joined(separator: ", ")))")
        }
        let chosen = parsed.credentials.filter { names.isEmpty || names.contains($0.name) }
        if chosen.isEmpty { throw CLIError("\(policy) declares no credentials (spec.credentials)") }
        var results: [(MintedCredentialSource, Result<MintedCredential, KubeError>)] = []
        var mintedAt: [String: Int64] = [:]
        for c in chosen {
            mintedAt[c.name] = Int64(Date().timeIntervalSince1970)
            do throws(KubeError) { results.append((c, .success(try await c.mint(environment: CommandIO.current.environment)))) } catch { results.append((c, .failure(error))) }
        }
        func expires(_ c: MintedCredentialSource, _ m: MintedCredential) -> String { RFC3339.format((mintedAt[c.name] ?? 0) + m.lifetime.components.seconds) }
        let io = CommandIO.current
        if output == .json {
            let items: [JSONValue] = results.map { c, r in
                var o: [(String, JSONValue)] = [("name", .string(c.name)), ("provider", .string(c.provider.kind))]
                switch r {
                case .success(let m):
                    o.append(("registries", .array(m.auths.keys.sorted(by: utf8Less).map { k in
                        .object(JSONObject([("registry", .string(k)), ("username", .string(m.auths[k]!.username))]))
                    })))
                    if !m.origin.isEmpty { o.append(("origin", .string(m.origin))) }
                    o.append(("expiresAt", .string(expires(c, m))))
                    o.append(("lifetimeSeconds", .number(String(m.lifetime.components.seconds))))
                    o.append(("refreshAfterSeconds", .number(String(c.refreshDelay(lifetime: m.lifetime).components.seconds))))
                case .failure(let e): o.append(("error", .string(e.message)))
                }
                return .object(JSONObject(o))
            }
            io.writeStdout(GoJSONWriter.indented(.object(JSONObject([("credentials", .array(items))]))))
        } else {
            var rows: [[String]] = [["CREDENTIAL", "PROVIDER", "REGISTRY", "USERNAME", "EXPIRES", "LIFETIME", "REFRESH AFTER"]]
            var errors = ""
            for (c, r) in results {
                switch r {
                case .success(let m):
                    for k in m.auths.keys.sorted(by: utf8Less) {
                        rows.append([c.name, m.origin.isEmpty ? c.provider.kind : "\(c.provider.kind) (\(m.origin))", k, m.auths[k]!.username, expires(c, m),
                                     "\(m.lifetime.components.seconds)s", "\(c.refreshDelay(lifetime: m.lifetime).components.seconds)s"])
                    }
                case .failure(let e): errors += "\(c.name): \(e.message)\n"
                }
            }
            io.writeStdout(Array(Table.render(rows).utf8))
            if !errors.isEmpty { io.writeStderr(errors) }
        }
        if results.contains(where: { if case .failure = $0.1 { true } else { false } }) { throw ExitCode(ExitStatus.findings) }
    }
}
