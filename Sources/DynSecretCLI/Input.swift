internal import DynSecretCore
internal import DynSecretCrypto
internal import Foundation

/// Reading user-supplied files and standard input with one-line, path-naming errors. Every input has a limit by
/// kind: at most limit + 1 bytes are read, so `/dev/zero`, an endless pipe or a huge file fails with a clear error
/// (exit 2) instead of exhausting memory.
enum Input {
    /// What an input is, and the most bytes dynsecret reads of it.
    enum Kind {
        /// Kubernetes manifests (`-f`, `--from-manifests`): 128 MiB per file (each document at most 3 MiB).
        case manifests
        /// A `ReplicationPolicy` file: 1 MiB.
        case policy
        /// A password or passphrase: 64 KiB.
        case password
        /// A Docker CLI config, a Secret to merge into, a CA bundle, an at-rest record: 4 MiB.
        case document
        /// A store bundle (many records): 1 GiB.
        case bundle

        var limit: Int {
            switch self {
            case .manifests: 128 << 20
            case .policy: 1 << 20
            case .password: 64 << 10
            case .document: 4 << 20
            case .bundle: 1 << 30
            }
        }

        var noun: String {
            switch self {
            case .manifests: "a manifest file"
            case .policy: "a policy"
            case .password: "a password"
            case .document: "this input"
            case .bundle: "a bundle"
            }
        }
    }

    /// The bytes of `path`, or of standard input when `path` is `-`, at most `kind.limit`.
    static func read(_ path: String, what: String, kind: Kind) throws(CLIError) -> [UInt8] {
        let limit = kind.limit
        func tooLarge(_ name: String) -> CLIError {
            CLIError("\(what) \(name): larger than \(limit >= 1 << 20 ? "\(limit >> 20) MiB" : "\(limit >> 10) KiB"), the most dynsecret reads for \(kind.noun)")
        }
        if path == "-" {
            let bytes: [UInt8]
            do {
                bytes = try CommandIO.current.readStdin(limit)
            } catch {
                throw CLIError("\(what): cannot read standard input")
            }
            if bytes.count > limit { throw tooLarge("(standard input)") }
            return bytes
        }
        try check(path, what: what)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CLIError("\(what) \(path): cannot read the file")
        }
        defer { try? handle.close() }
        let bytes: [UInt8]
        let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int
        do { bytes = try readBounded(handle, limit: limit, expected: size) } catch {
            throw CLIError("\(what) \(path): cannot read the file")
        }
        if bytes.count > limit { throw tooLarge(path) }
        return bytes
    }

    /// Reads `handle` to its end or to `limit` + 1 bytes, in chunks straight into the array.
    static func readBounded(_ handle: FileHandle, limit: Int, expected: Int? = nil) throws -> [UInt8] {
        var bytes: [UInt8] = []
        // A regular file's size is known: one allocation, never a doubling copy (capped: the size can lie).
        if let expected, expected > 0 { bytes.reserveCapacity(min(expected, limit) + 1) }
        while bytes.count <= limit, let chunk = try handle.read(upToCount: min(1 << 20, limit + 1 - bytes.count)), !chunk.isEmpty {
            bytes.append(contentsOf: chunk)
        }
        return bytes
    }

    /// Refuses `path` as an input when it cannot be read as one, saying why in the words of the failure: missing,
    /// a symbolic link loop, permission, a file where a directory should be, a directory or a socket. FIFOs and
    /// devices named directly are read (process substitution gives a pipe), within the input's limit.
    static func check(_ path: String, what: String) throws(CLIError) {
        let problem = AtomicFile.readProblem(AtomicFile.kind(of: path))
        if let problem { throw CLIError("\(what) \(path): \(problem)") }
        guard FileManager.default.isReadableFile(atPath: path) else { throw CLIError("\(what) \(path): permission denied") }
    }

    /// Warns when the file holding a password or passphrase can be read by its group or by others.
    static func warnIfShared(_ path: String, what: String) {
        guard path != "-", case .regular(let mode) = AtomicFile.kind(of: path), mode & 0o044 != 0 else { return }
        CommandIO.current.warn("\(what) \(path): readable by \(mode & 0o004 != 0 ? "everyone" : "its group") (mode 0\(String(mode, radix: 8))); a file holding a password should be private to its owner: chmod 600 \(path)")
    }

    /// A password read from stdin or a file: one trailing newline (LF or CRLF) is dropped, as `docker login` does.
    static func password(from bytes: [UInt8], what: String) throws(CLIError) -> String {
        var b = bytes[...]
        if b.last == 0x0A { b = b.dropLast() }
        if b.last == 0x0D { b = b.dropLast() }
        guard !b.isEmpty else { throw CLIError("\(what): no password (the input is empty)") }
        guard let s = String(validating: b, as: UTF8.self) else { throw CLIError("\(what): the password is not UTF-8 text") }
        return s
    }
}

extension DockerCLIConfigImport {
    /// Reads the Docker CLI config at `path` (`-`: standard input) for the option `flag`, warning about each entry
    /// left out.
    static func load(_ path: String, flag: String) throws(CLIError) -> DockerCLIConfigImport {
        let bytes = try Input.read(path, what: flag, kind: .document)
        let imported: DockerCLIConfigImport
        do throws(ManifestError) {
            imported = try DockerCLIConfigImport.read(bytes)
        } catch {
            throw CLIError("\(flag) \(path): \(error.description)")
        }
        for note in imported.skipped { CommandIO.current.warn("\(flag): skipped \(note)") }
        return imported
    }
}
