internal import DynSecretCore
internal import DynSecretCrypto
internal import Foundation

/// The `-f` inputs of a command: files, directories (recursive: `.yaml`, `.yml`, `.json`) and `-` for stdin.
enum ManifestInputs {
    /// Expands paths into files in a stable order; throws for a path that does not exist.
    static func files(_ paths: [String], flag: String = "-f") throws(CLIError) -> [String] {
        var out: [String] = []
        var stdinUsed = false
        for path in paths {
            if path == "-" {
                if stdinUsed { throw CLIError("\(flag) -: standard input can be given only once") }
                stdinUsed = true
                out.append("-")
                continue
            }
            switch AtomicFile.kind(of: path) {
            case .directory: break
            case .regular, .fifo, .device:
                out.append(path)
                continue
            case let other: throw CLIError("\(flag) \(path): \(AtomicFile.readProblem(other) ?? "cannot be read")")
            }
            guard let walker = FileManager.default.enumerator(atPath: path) else { throw CLIError("\(flag) \(path): cannot list the directory") }
            var found: [String] = []
            while let relative = walker.nextObject() as? String {
                let lower = relative.lowercased()
                guard lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") || lower.hasSuffix(".json") else { continue }
                let full = (path as NSString).appendingPathComponent(relative)
                // Regular files only: a FIFO would block the walk, a device would never end.
                switch AtomicFile.kind(of: full) {
                case .regular: found.append(full)
                case .directory: break
                case .fifo: CommandIO.current.warn("\(flag) \(path): skipped \(relative): a FIFO, not a regular file")
                case .socket, .device: CommandIO.current.warn("\(flag) \(path): skipped \(relative): not a regular file")
                case let other: CommandIO.current.warn("\(flag) \(path): skipped \(relative): \(AtomicFile.readProblem(other) ?? "cannot be read")")
                }
            }
            out += found.sorted()
        }
        return out
    }

    /// Reads every document of every input, in order; read errors are passed to `body` per document or file.
    static func forEachDocument(_ paths: [String], flag: String = "-f", _ body: (Result<ManifestDocument, ManifestError>) -> Void) throws(CLIError) {
        for file in try files(paths, flag: flag) {
            let bytes: [UInt8]
            do {
                bytes = try Input.read(file, what: flag, kind: .manifests)
            } catch {
                body(.failure(ManifestError(error.message.replacingOccurrences(of: "\(flag) \(file): ", with: ""), source: file)))
                continue
            }
            ManifestReader.forEachDocument(bytes, source: file, body)
        }
    }
}
