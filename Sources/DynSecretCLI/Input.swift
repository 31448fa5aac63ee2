internal import DynSecretCore
internal import Foundation

/// Reading user-supplied files and standard input with one-line, path-naming errors.
enum Input {
    /// The bytes of `path`, or of standard input when `path` is `-`.
    static func read(_ path: String, what: String) throws(CLIError) -> [UInt8] {
        if path == "-" {
            do {
                return try CommandIO.current.readStdin()
            } catch {
                throw CLIError("\(what): cannot read standard input")
            }
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CLIError("\(what) \(path): no such file or directory")
        }
        if isDirectory.boolValue { throw CLIError("\(what) \(path): is a directory") }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw CLIError("\(what) \(path): permission denied")
        }
        // Read in chunks straight into the array, so a large file is never held twice.
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CLIError("\(what) \(path): cannot read the file")
        }
        defer { try? handle.close() }
        var bytes: [UInt8] = []
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int { bytes.reserveCapacity(size) }
        do {
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { bytes.append(contentsOf: chunk) }
        } catch {
            throw CLIError("\(what) \(path): cannot read the file")
        }
        return bytes
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
        let bytes = try Input.read(path, what: flag)
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
