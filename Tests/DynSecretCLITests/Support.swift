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
func dynsecret(_ args: [String], stdin: String = "") async -> RunResult {
    let capture = Capture()
    let input = Array(stdin.utf8)
    let io = CommandIO(
        readStdin: { input },
        writeStdout: { bytes in capture.out.withLock { $0 += bytes } },
        writeStderr: { text in capture.err.withLock { $0 += text } },
        environment: [:]
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
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    p.standardOutput = out
    p.standardError = err
    let inPipe = Pipe()
    p.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
    let exited = DispatchSemaphore(value: 0)
    p.terminationHandler = { _ in exited.signal() }
    do {
        try p.run()
    } catch {
        try? out.close()
        try? err.close()
        throw error
    }
    try? out.close()
    try? err.close()
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
