public import ArgumentParser
internal import Foundation
internal import DynSecretCore
internal import DynSecretCrypto
internal import DynSecretKube

/// The `dynsecret` command tree.
public struct DynSecretCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dynsecret",
        abstract: "Secret and registry-credential manager for Kubernetes.",
        version: DynSecretVersion.text,
        // Grouped by task in `--help`; `version` comes last, on its own.
        groupedSubcommands: [
            CommandGroup(name: "Registry credentials", subcommands: [CreateRegistry.self, Verify.self, CredentialsCommand.self]),
            CommandGroup(name: "Checks", subcommands: [Validate.self, IndexCommand.self, Which.self, WebhookCommand.self]),
            CommandGroup(name: "Replication", subcommands: [Replicate.self, Status.self, ControllerCommand.self, Migrate.self, ClusterCommand.self]),
            CommandGroup(name: "At rest", subcommands: [Keys.self, Encrypt.self, Decrypt.self, StoreCommand.self]),
            CommandGroup(name: "Other", subcommands: [VersionCommand.self]),
        ]
    )

    public init() {}
}

enum DynSecretVersion {
    static let number = "0.1.0"
    static let text = "dynsecret \(number)"
}

/// Entry point shared by the executable and the tests.
public enum CLI {
    /// Runs `dynsecret` with `arguments` (without the program name) and returns the exit code.
    ///
    /// Errors are printed as one line, `error: …`, on standard error; standard output stays empty.
    public static func run(_ arguments: [String], io: CommandIO = .process) async -> Int32 {
        await CommandIO.$current.withValue(io) {
            do {
                var command = try DynSecretCommand.parseAsRoot(arguments)
                if var asyncCommand = command as? any AsyncParsableCommand {
                    try await asyncCommand.run()
                } else {
                    try command.run()
                }
                return ExitStatus.ok
            } catch let error as CLIError {
                io.writeStderr("error: \(error.message)\n")
                return error.exitCode
            } catch let error as ExitCode {
                return error.rawValue
            } catch {
                let code = DynSecretCommand.exitCode(for: error)
                if code == .success {
                    // --help and --version
                    io.writeStdout(Array((DynSecretCommand.fullMessage(for: error) + "\n").utf8))
                    return ExitStatus.ok
                }
                let message = redact(DynSecretCommand.message(for: error), arguments: arguments)
                io.writeStderr("error: \(message) (see 'dynsecret --help')\n")
                return ExitStatus.usage
            }
        }
    }

    /// Removes any password given on the command line from a parser message.
    static func redact(_ message: String, arguments: [String]) -> String {
        var out = message
        for (i, a) in arguments.enumerated() {
            var value: String?
            if ["--password", "--docker-password"].contains(a), i + 1 < arguments.count { value = arguments[i + 1] }
            for flag in ["--password=", "--docker-password="] where a.hasPrefix(flag) { value = String(a.dropFirst(flag.count)) }
            if let value, !value.isEmpty { out = out.replacingOccurrences(of: value, with: "<redacted>") }
        }
        return out.split(separator: "\n").first.map(String.init) ?? out
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print version information.")

    func run() throws {
        let text = "\(DynSecretVersion.text)\n\(OpenSSLLibrary.version)\n\(CurlLibrary.version)\n"
        CommandIO.current.writeStdout(Array(text.utf8))
    }
}
