import DynSecretCLI
import DynSecretCore
import Foundation
import Synchronization
import Testing

/// The streams of one in-process CLI run.
struct RunResult {
    var code: Int32
    var stdout: String
    var stderr: String
}

final class Capture: Sendable {
    let out = Mutex<[UInt8]>([])
    let err = Mutex<String>("")
}

/// Runs `dynsecret args` in-process with `stdin` as standard input.
func dynsecret(_ args: [String], stdin: String = "", environment: [String: String] = [:]) async -> RunResult {
    let capture = Capture()
    let input = Array(stdin.utf8)
    let io = CommandIO(
        readStdin: { limit in Array(input.prefix(limit + 1)) },
        writeStdout: { bytes in capture.out.withLock { $0 += bytes } },
        writeStderr: { text in capture.err.withLock { $0 += text } },
        environment: environment
    )
    let code = await CLI.run(args, io: io)
    return RunResult(code: code, stdout: String(decoding: capture.out.withLock { $0 }, as: UTF8.self), stderr: capture.err.withLock { $0 })
}

/// A child of `runProcess` that outlived its deadline and was killed.
struct ProcessTimedOut: Error, CustomStringConvertible {
    var command: String
    var timeout: Duration
    var stdout: String
    var stderr: String
    var description: String {
        "\(command) did not exit within \(timeout) and was killed (SIGKILL); standard error so far: \(stderr.suffix(2000))"
    }
}

/// Runs an executable and returns its exit status and output. Standard output and standard error go to temporary
/// files, so a child filling one stream never blocks on the other; a child still running after `timeout` is
/// killed (SIGKILL) and `ProcessTimedOut` is thrown.
func runProcess(_ path: String, _ args: [String], stdin: String? = nil, timeout: Duration = .seconds(120)) throws -> RunResult {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-run-\(UUID().uuidString)")
    let outURL = base.appendingPathExtension("out")
    let errURL = base.appendingPathExtension("err")
    for url in [outURL, errURL] where !FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600]) {
        throw CLIError("runProcess: cannot create \(url.path)")
    }
    defer { for url in [outURL, errURL] { try? FileManager.default.removeItem(at: url) } }
    let inPipe = Pipe()
    let exited = DispatchSemaphore(value: 0)
    let p = try launch(path, args, stdout: outURL.path, stderr: errURL.path, stdin: stdin == nil ? nil : inPipe) { _ in exited.signal() }
    if let stdin {
        // Written on its own thread: a child that does not read its input cannot block the caller.
        let writer = inPipe.fileHandleForWriting
        let data = Data(stdin.utf8)
        Thread.detachNewThread {
            try? writer.write(contentsOf: data)
            try? writer.close()
        }
    }
    let (seconds, attoseconds) = timeout.components
    let timedOut = exited.wait(timeout: .now() + Double(seconds) + Double(attoseconds) / 1e18) == .timedOut
    if timedOut { kill(p.processIdentifier, SIGKILL) }
    p.waitUntilExit()
    let o = String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self)
    let e = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
    if timedOut {
        throw ProcessTimedOut(command: ([path] + args).joined(separator: " ").prefix(300).description, timeout: timeout, stdout: o, stderr: e)
    }
    return RunResult(code: p.terminationStatus, stdout: o, stderr: e)
}

/// Starts `path` with standard output and standard error written to the files `stdout` and `stderr` (which must
/// exist; nil discards the stream; the same path for both shares one handle) and `stdin` as standard input (nil: none).
/// The parent's copies of the file handles are closed once the child runs, or when it cannot start.
func launch(_ path: String, _ args: [String], stdout: String?, stderr: String?, stdin: Pipe? = nil,
            environment: [String: String]? = nil, onExit: (@Sendable (Process) -> Void)? = nil) throws -> Process {
    var opened: [String: FileHandle] = [:]
    defer { for h in opened.values { try? h.close() } }
    func handle(_ file: String?) throws -> FileHandle {
        guard let file else { return FileHandle.nullDevice }
        if let h = opened[file] { return h }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
        opened[file] = h
        return h
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = environment }
    p.standardOutput = try handle(stdout)
    p.standardError = try handle(stderr)
    p.standardInput = stdin ?? FileHandle.nullDevice
    p.terminationHandler = onExit
    try p.run()
    return p
}

/// The executable `name` found on `PATH`, if any.
func onPath(_ name: String) -> String? {
    let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
    return paths.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// The installed kubectl, if any.
let kubectlPath: String? = onPath("kubectl")

/// The `dynsecret` binary built next to this test bundle.
let dynsecretBinary: String? = {
    if let override = ProcessInfo.processInfo.environment["DYNSECRET_BIN"] { return override }
    guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("dynsecret").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}()

/// A temporary directory removed when the value is released.
final class TempDir: Sendable {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func file(_ name: String, _ content: String, mode: Int = 0o600) throws -> String {
        let path = url.appendingPathComponent(name).path
        try Data(content.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// The decoded `.dockerconfigjson` of a Secret printed as JSON.
func dockerConfig(ofJSON text: String) throws -> JSONValue {
    let secret = try Secret.decode(try JSONParser.parse(text)).secret
    return try JSONParser.parse(try #require(secret.data[".dockerconfigjson"]))
}

/// Writes `ca.crt`/`ca.key` and a `server.crt`/`server.key` for 127.0.0.1 signed by it into `dir` (EC P-256, two
/// days), with the openssl command line; `otherCA` adds an unrelated `other-ca.crt`/`other-ca.key`.
func loopbackServerCertificate(in dir: TempDir, otherCA: Bool = false) throws {
    func path(_ n: String) -> String { dir.url.appendingPathComponent(n).path }
    func openssl(_ args: [String]) throws {
        let r = try runProcess("/usr/bin/openssl", args)
        guard r.code == 0 else { throw TestFailure("openssl \(args.first ?? ""): \(r.stderr)") }
    }
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _ = try dir.file("ext.cnf", "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    for ca in otherCA ? ["ca", "other-ca"] : ["ca"] {
        try openssl(["req", "-x509"] + ec + ["-keyout", path("\(ca).key"), "-out", path("\(ca).crt"), "-subj", "/CN=\(ca)", "-days", "2"])
    }
    try openssl(["req"] + ec + ["-keyout", path("server.key"), "-out", path("server.csr"), "-subj", "/CN=127.0.0.1"])
    try openssl(["x509", "-req", "-in", path("server.csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial",
                 "-out", path("server.crt"), "-days", "2", "-extfile", path("ext.cnf")])
}
