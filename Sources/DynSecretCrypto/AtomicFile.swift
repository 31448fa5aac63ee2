#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// A file-system operation that failed, naming the path and the system's reason.
public struct FileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    /// The system error number behind the failure, or 0.
    public var code: Int32 = 0
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }

    static func errno(_ path: String, _ what: String) -> FileError {
        let code = Glibc.errno
        var e = FileError(path: path, message: "\(what): \(String(cString: strerror(code)))")
        e.code = code
        return e
    }

    /// Whether the file was missing.
    public var isNoSuchFile: Bool { code == ENOENT }
    /// Whether the file already existed (a write that must not replace it).
    public var isAlreadyExists: Bool { code == EEXIST }
}

/// What `fstat` says about an open file.
public struct FileStatus: Sendable {
    /// Permission bits (`st_mode & 0o7777`).
    public var mode: UInt32
    /// The owner's user id.
    public var owner: UInt32
    public var size: Int
}

/// Files holding secrets: written whole or not at all, mode 0600, and read with permission checks.
public enum AtomicFile {
    /// Replaces `path` with `bytes`: a temporary file in the same directory (mode 0600, `O_EXCL`), write, fsync,
    /// rename over `path`, fsync of the directory. A crash leaves the old file or the new one, never a mix.
    ///
    /// With `durable: false` the two fsyncs are skipped (still atomic against crashes of the process, not of the machine).
    ///
    /// Removes temporary files `write` left next to `path` when its process was killed between creating and
    /// renaming them (`.NAME.tmp-` and 16 hex digits): they may hold secret data. Returns how many were removed.
    @discardableResult
    public static func removeLeftovers(of path: String) -> Int {
        let dir = directory(of: path)
        let prefix = "." + (path.split(separator: "/").last.map(String.init) ?? path) + ".tmp-"
        guard let d = opendir(dir) else { return 0 }
        defer { closedir(d) }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix(prefix) { names.append(name) }
        }
        var removed = 0
        for name in names {
            let tail = name.dropFirst(prefix.count)
            guard tail.count == 16, tail.allSatisfy({ $0.isHexDigit }) else { continue }
            if unlink("\(dir)/\(name)") == 0 { removed += 1 }
        }
        return removed
    }

    /// With `replace: false` the temporary file is hard-linked to `path` instead of renamed over it, so an existing
    /// file (or a symbolic link) at `path` is never replaced; that fails with `isAlreadyExists`.
    public static func write(_ bytes: [UInt8], to path: String, mode: UInt32 = 0o600, durable: Bool = true,
                             replace: Bool = true) throws(FileError) {
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
        if replace {
            guard rename(temp, path) == 0 else {
                let e = FileError.errno(path, "cannot rename the temporary file into place")
                unlink(temp)
                throw e
            }
        } else {
            guard link(temp, path) == 0 else {
                var e = FileError.errno(path, "cannot link the temporary file into place")
                if e.code == EEXIST { e.message = "already exists" }
                unlink(temp)
                throw e
            }
            unlink(temp)
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

    /// What is at a path, with symbolic links followed.
    public enum PathKind: Sendable, Equatable {
        /// A regular file with its permission bits.
        case regular(mode: UInt32)
        case directory, fifo, socket, device
        /// Nothing at the path.
        case missing
        /// A symbolic link loop, or too many links (`ELOOP`).
        case linkLoop
        /// A directory on the way may not be searched (`EACCES`).
        case noPermission
        /// A component of the path is a file, not a directory (`ENOTDIR`).
        case notADirectory
        /// Another failure of `stat`, with its text.
        case other(String)
    }

    /// Why a path of this kind cannot be read as an input file, in the words of the failure; nil for a regular
    /// file, and for a FIFO or device named directly (process substitution gives a pipe).
    public static func readProblem(_ kind: PathKind) -> String? {
        switch kind {
        case .regular, .fifo, .device: nil
        case .directory: "is a directory"
        case .socket: "is a socket, not a file"
        case .missing: "no such file or directory"
        case .linkLoop: "too many levels of symbolic links (a symbolic link loop)"
        case .noPermission: "permission denied (a directory on the path cannot be searched)"
        case .notADirectory: "a component of the path is a file, not a directory"
        case .other(let text): text
        }
    }

    /// What is at `path` (`stat`, following symbolic links).
    public static func kind(of path: String) -> PathKind {
        var st = stat()
        guard stat(path, &st) == 0 else {
            switch Glibc.errno {
            case ENOENT: return .missing
            case ELOOP: return .linkLoop
            case EACCES: return .noPermission
            case ENOTDIR: return .notADirectory
            case let code: return .other(String(cString: strerror(code)))
            }
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .regular(mode: UInt32(st.st_mode) & 0o7777)
        case S_IFDIR: return .directory
        case S_IFIFO: return .fifo
        case S_IFSOCK: return .socket
        default: return .device
        }
    }

    /// The largest file `read` accepts by default (records, bundles).
    public static let defaultMaxBytes = 64 << 20

    /// The bytes of `path`: a regular file (not a symbolic link, FIFO or device) of at most `maxBytes` bytes.
    ///
    /// The file is opened with `O_NOFOLLOW | O_NONBLOCK` and checked with `fstat` on the open descriptor; `check` sees
    /// that status before anything is read (so a caller can refuse, say, a file others can read).
    public static func read(_ path: String, maxBytes: Int = defaultMaxBytes,
                            check: (FileStatus) throws(FileError) -> Void = { _ in }) throws(FileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            let code = Glibc.errno
            if code == ELOOP {
                // O_NOFOLLOW refuses a link; say whether it also loops.
                let loops = kind(of: path) == .linkLoop
                var e = FileError(path: path, message: loops ? "too many levels of symbolic links (a symbolic link loop)"
                                                             : "is a symbolic link; refusing to follow it")
                e.code = ELOOP
                throw e
            }
            if code != ENOENT, let problem = readProblem(kind(of: path)) {
                var e = FileError(path: path, message: problem)
                e.code = code
                throw e
            }
            throw .errno(path, "cannot open")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .errno(path, "cannot stat") }
        guard st.st_mode & S_IFMT == S_IFREG else {
            let what = switch st.st_mode & S_IFMT {
            case S_IFDIR: "is a directory"
            case S_IFIFO: "is a FIFO, not a regular file"
            case S_IFSOCK: "is a socket, not a regular file"
            default: "is a device, not a regular file"
            }
            throw FileError(path: path, message: what)
        }
        guard st.st_size <= maxBytes else {
            throw FileError(path: path, message: "the file is \(st.st_size) bytes; the limit is \(maxBytes)")
        }
        try check(FileStatus(mode: UInt32(st.st_mode) & 0o7777, owner: UInt32(st.st_uid), size: Int(st.st_size)))
        var out: [UInt8] = []
        out.reserveCapacity(Int(st.st_size))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        defer { Cleanse.wipe(&chunk) }
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw .errno(path, "cannot read")
            }
            if n == 0 { break }
            guard out.count + n <= maxBytes else {
                Cleanse.wipe(&out)
                throw FileError(path: path, message: "the file grew beyond the limit of \(maxBytes) bytes while being read")
            }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    /// `path` with every symbolic link resolved (`realpath`), or `path` itself when it cannot be resolved.
    public static func resolvingLinks(_ path: String) -> String {
        guard let p = realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }

    /// The effective user id of this process.
    public static var effectiveUser: UInt32 { UInt32(geteuid()) }

    /// Runs `body` while holding an exclusive `flock` on `lockPath` (created 0600 if missing, never through a
    /// symbolic link), so read-modify-write cycles of the file it guards do not interleave across processes.
    public static func withExclusiveLock<R>(_ lockPath: String, _ body: () throws -> R) throws -> R {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, mode_t(0o600))
        guard fd >= 0 else { throw FileError.errno(lockPath, "cannot open the lock file") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if Glibc.errno == EINTR { continue }
            throw FileError.errno(lockPath, "cannot lock")
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
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
