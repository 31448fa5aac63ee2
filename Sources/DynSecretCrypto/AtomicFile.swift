#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// A file-system operation that failed, naming the path and the system's reason.
public struct FileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }

    static func errno(_ path: String, _ what: String) -> FileError {
        FileError(path: path, message: "\(what): \(String(cString: strerror(Glibc.errno)))")
    }
}

/// Files holding secrets: written whole or not at all, mode 0600, and read with permission checks.
public enum AtomicFile {
    /// Replaces `path` with `bytes`: a temporary file in the same directory (mode 0600, `O_EXCL`), write, fsync,
    /// rename over `path`, fsync of the directory. A crash leaves the old file or the new one, never a mix.
    ///
    /// With `durable: false` the two fsyncs are skipped (still atomic against crashes of the process, not of the machine).
    public static func write(_ bytes: [UInt8], to path: String, mode: UInt32 = 0o600, durable: Bool = true) throws(FileError) {
        let dir = directory(of: path)
        let base = path.split(separator: "/").last.map(String.init) ?? path
        var suffix = [UInt8](repeating: 0, count: 8)
        _ = try? SecureRandom.bytes(8).withUnsafeBytes { src in suffix.withUnsafeMutableBytes { $0.copyMemory(from: src) } }
        let temp = "\(dir)/.\(base).tmp-\(Hex.encode(suffix))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw .errno(path, "cannot create a temporary file next to it") }
        var ok = false
        defer {
            if !ok {
                close(fd)
                unlink(temp)
            }
        }
        // The umask may have narrowed the mode; secrets want exactly `mode`.
        guard fchmod(fd, mode_t(mode)) == 0 else { throw .errno(temp, "cannot set mode") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw .errno(temp, "cannot write")
            }
            written += n
        }
        if durable { guard fsync(fd) == 0 else { throw .errno(temp, "cannot fsync") } }
        ok = true
        guard close(fd) == 0 else {
            unlink(temp)
            throw .errno(temp, "cannot close")
        }
        guard rename(temp, path) == 0 else {
            let e = FileError.errno(path, "cannot rename the temporary file into place")
            unlink(temp)
            throw e
        }
        if durable { try syncDirectory(dir) }
    }

    /// fsyncs a directory so that a rename or a new entry in it survives a power loss.
    public static func syncDirectory(_ dir: String) throws(FileError) {
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw .errno(dir, "cannot open directory") }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw .errno(dir, "cannot fsync directory") }
    }

    /// Creates `path` and missing parents with `mode` (0700 by default); new entries are made durable in their parent.
    public static func makeDirectory(_ path: String, mode: UInt32 = 0o700, durable: Bool = true) throws(FileError) {
        var st = stat()
        if stat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else { throw FileError(path: path, message: "exists and is not a directory") }
            return
        }
        let parent = directory(of: path)
        if parent != path { try makeDirectory(parent, mode: mode, durable: durable) }
        if mkdir(path, mode_t(mode)) != 0 && Glibc.errno != EEXIST { throw .errno(path, "cannot create directory") }
        if durable { try syncDirectory(parent) }
    }

    /// The file's permission bits, or nil when it does not exist.
    public static func permissions(_ path: String) throws(FileError) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if Glibc.errno == ENOENT { return nil }
            throw .errno(path, "cannot stat")
        }
        return UInt32(st.st_mode) & 0o7777
    }

    /// The bytes of `path`.
    public static func read(_ path: String) throws(FileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .errno(path, "cannot open") }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw .errno(path, "cannot read")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    /// Names in a directory (without `.` and `..`), sorted; empty when it does not exist.
    public static func list(_ dir: String) throws(FileError) -> [String] {
        guard let d = opendir(dir) else {
            if Glibc.errno == ENOENT { return [] }
            throw .errno(dir, "cannot list")
        }
        defer { closedir(d) }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes a file.
    public static func remove(_ path: String) throws(FileError) {
        guard unlink(path) == 0 else { throw .errno(path, "cannot remove") }
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let d = String(path[..<slash])
        return d.isEmpty ? "/" : d
    }
}
