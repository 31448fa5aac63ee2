internal import Foundation

/// Where a command reads input and writes output; the process's standard streams by default.
///
/// Tests run commands in-process with captured streams; everything a command prints goes through here.
public struct CommandIO: Sendable {
    /// Reads standard input to its end, or up to `limit` + 1 bytes, whichever comes first.
    public var readStdin: @Sendable (_ limit: Int) throws -> [UInt8]
    public var writeStdout: @Sendable ([UInt8]) -> Void
    public var writeStderr: @Sendable (String) -> Void
    public var environment: [String: String]

    public init(
        readStdin: @escaping @Sendable (_ limit: Int) throws -> [UInt8],
        writeStdout: @escaping @Sendable ([UInt8]) -> Void,
        writeStderr: @escaping @Sendable (String) -> Void,
        environment: [String: String]
    ) {
        self.readStdin = readStdin
        self.writeStdout = writeStdout
        self.writeStderr = writeStderr
        self.environment = environment
    }

    /// The process's standard input, output and error, and its environment.
    public static var process: CommandIO {
        CommandIO(
            readStdin: { limit in try Input.readBounded(FileHandle.standardInput, limit: limit) },
            writeStdout: { FileHandle.standardOutput.write(Data($0)) },
            writeStderr: { FileHandle.standardError.write(Data($0.utf8)) },
            environment: ProcessInfo.processInfo.environment
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
