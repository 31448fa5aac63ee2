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

/// Runs an executable and returns its exit status and output.
func runProcess(_ path: String, _ args: [String], stdin: String? = nil) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let inPipe = Pipe()
    p.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
    try p.run()
    if let stdin {
        inPipe.fileHandleForWriting.write(Data(stdin.utf8))
        try inPipe.fileHandleForWriting.close()
    }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return RunResult(code: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// The installed kubectl, if any.
let kubectlPath: String? = {
    let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
    return paths.map { "\($0)/kubectl" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}()

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
