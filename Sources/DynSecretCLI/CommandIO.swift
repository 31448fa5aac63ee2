internal import Foundation
internal import Synchronization

/// Where a command reads input and writes output; the process's standard streams by default.
///
/// Tests run commands in-process with captured streams; everything a command prints goes through here.
public struct CommandIO: Sendable {
    /// Reads standard input to its end, or up to `limit` + 1 bytes, whichever comes first.
    public var readStdin: @Sendable (_ limit: Int) throws -> [UInt8]
    public var writeStdout: @Sendable ([UInt8]) -> Void
    public var writeStderr: @Sendable (String) -> Void
    public var environment: [String: String]
    /// Whether standard error is a terminal (progress is shown only then).
    public var stderrIsTerminal: Bool

    public init(
        readStdin: @escaping @Sendable (_ limit: Int) throws -> [UInt8],
        writeStdout: @escaping @Sendable ([UInt8]) -> Void,
        writeStderr: @escaping @Sendable (String) -> Void,
        environment: [String: String],
        stderrIsTerminal: Bool = false
    ) {
        self.readStdin = readStdin
        self.writeStdout = writeStdout
        self.writeStderr = writeStderr
        self.environment = environment
        self.stderrIsTerminal = stderrIsTerminal
    }

    /// The process's standard input, output and error, and its environment.
    public static var process: CommandIO {
        CommandIO(
            readStdin: { limit in try Input.readBounded(FileHandle.standardInput, limit: limit) },
            writeStdout: { FileHandle.standardOutput.write(Data($0)) },
            writeStderr: { FileHandle.standardError.write(Data($0.utf8)) },
            environment: ProcessInfo.processInfo.environment,
            stderrIsTerminal: isatty(2) == 1
        )
    }

    @TaskLocal static var current: CommandIO = .process

    /// Writes a one-line warning to standard error.
    func warn(_ message: String) { writeStderr("warning: \(message)\n") }
}

/// An error that ends a command with a one-line message and an exit code (2: usage or input error).
public struct CLIError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var exitCode: Int32

    public init(_ message: String, exitCode: Int32 = ExitStatus.usage) {
        self.message = message
        self.exitCode = exitCode
    }

    public var description: String { message }
}

/// dynsecret's exit codes.
public enum ExitStatus {
    public static let ok: Int32 = 0
    /// Findings at or above the failure threshold (validation, verification).
    public static let findings: Int32 = 1
    /// Usage, input or I/O error.
    public static let usage: Int32 = 2
}

/// A progress line for long CLI work (`replicate --once`, `store rewrap`, `index --cluster`), on standard error and
/// only when it is a terminal: redrawn at most ten times a second in place, cleared at the end. It shows counts and
/// a label, never object names or data. With `NO_COLOR` or `TERM=dumb` no escape sequence is written (the line is
/// overwritten with spaces instead).
final class Progress: Sendable {
    private struct State {
        var done = 0
        var total: Int
        var lastDraw: ContinuousClock.Instant?
        var width = 0
    }

    private let label: String
    private let io: CommandIO?
    private let plain: Bool
    private let state: Mutex<State>

    /// A progress line for `total` steps of `label` (0: a count without a total). Nothing is shown when standard
    /// error is not a terminal.
    init(_ label: String, total: Int, io: CommandIO = CommandIO.current) {
        self.label = label
        self.io = io.stderrIsTerminal && io.environment["TERM"] != "dumb" ? io : nil
        plain = io.environment["NO_COLOR"] != nil || io.environment["TERM"] == "dumb"
        state = Mutex(State(total: total))
    }

    /// `n` more steps are done.
    func advance(_ n: Int = 1) {
        guard let io else { return }
        let line: String? = state.withLock { s in
            s.done += n
            let now = ContinuousClock.now
            if let last = s.lastDraw, now - last < .milliseconds(100), s.total == 0 || s.done < s.total { return nil }
            s.lastDraw = now
            let text = s.total > 0 ? "\(label): \(s.done)/\(s.total)" : "\(label): \(s.done)"
            defer { s.width = max(s.width, text.count) }
            return plain ? "\r" + text.padding(toLength: max(s.width, text.count), withPad: " ", startingAt: 0) : "\r\u{1B}[2K" + text
        }
        if let line { io.writeStderr(line) }
    }

    /// Clears the line.
    func finish() {
        guard let io else { return }
        let width = state.withLock { $0.width }
        guard width > 0 else { return }
        io.writeStderr(plain ? "\r" + String(repeating: " ", count: width) + "\r" : "\r\u{1B}[2K")
    }
}
