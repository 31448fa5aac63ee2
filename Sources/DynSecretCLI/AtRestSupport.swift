internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretCrypto
internal import Foundation

/// Options shared by the at-rest commands.
struct KeyringOption: ParsableArguments {
    @Option(name: .customLong("keyring"), help: ArgumentHelp("Keyring file (YAML, mode 0600).", valueName: "file"))
    var path: String

    func load() throws(CLIError) -> Keyring {
        do { return try Keyring.load(path: path) } catch { throw CLIError(error.message) }
    }
}

/// Helpers for the `keys`, `encrypt`, `decrypt` and `store` commands.
enum AtRestCLI {
    /// The current time as seconds since 1970 and as RFC 3339.
    static func now() -> (seconds: UInt64, text: String) {
        let date = Date()
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return (UInt64(max(0, date.timeIntervalSince1970)), f.string(from: date))
    }

    /// The one Secret of a manifest file (`-` for stdin).
    static func readSecret(_ path: String) throws(CLIError) -> Secret {
        let bytes = try Input.read(path, what: "-f", kind: .manifests)
        let docs: [ManifestDocument]
        do { docs = try ManifestReader.read(bytes, source: path) } catch { throw CLIError(error.description) }
        guard docs.count == 1 else { throw CLIError("\(path): expected one Secret, found \(docs.count) documents") }
        do {
            let (secret, unknown) = try Secret.decode(docs[0].value)
            if let field = unknown.first { throw CLIError("\(path): document 1: \(field): unknown field") }
            return secret
        } catch let error as ManifestError {
            throw CLIError(error.located(source: path, document: 1, line: docs[0].line).description)
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("\(path): \(error)")
        }
    }

    /// A passphrase from a file (or `-` for stdin), without its trailing newline.
    static func passphrase(_ path: String?) throws(CLIError) -> [UInt8]? {
        guard let path else { return nil }
        let text = try Input.password(from: try Input.read(path, what: "--passphrase-file", kind: .password), what: "--passphrase-file \(path)")
        Input.warnIfShared(path, what: "--passphrase-file")
        return Array(text.precomposedStringWithCanonicalMapping.utf8)
    }

    /// Writes bytes that hold secrets: to standard output, or atomically with mode 0600 to `path`.
    static func emit(_ bytes: [UInt8], to path: String?) throws(CLIError) {
        guard let path, path != "-" else {
            CommandIO.current.writeStdout(bytes)
            return
        }
        do { try AtomicFile.write(bytes, to: path) } catch { throw CLIError("cannot write \(error.description)") }
    }

    /// Loads, changes and saves the keyring at `path` under an exclusive lock (`PATH.lock`).
    static func updateKeyring<R>(_ path: String, _ body: (inout Keyring) throws(CLIError) -> R) throws(CLIError) -> R {
        do {
            return try Keyring.update(path: path) { ring in try body(&ring) }
        } catch let e as CLIError {
            throw e
        } catch let e as KeyringError {
            throw CLIError(e.message)
        } catch {
            throw CLIError("keyring \(path): \(error)")
        }
    }

    static func openStore(_ path: String, create: Bool = false, durable: Bool = true) throws(CLIError) -> AtRestStore {
        do { return try AtRestStore.open(path, create: create, durable: durable) } catch { throw CLIError(error.message) }
    }

    /// Fixed-width columns, two spaces apart.
    static func table(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        var widths = [Int](repeating: 0, count: first.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { r in
            r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
