internal import DynSecretCore
internal import Foundation
#if canImport(Glibc)
internal import Glibc
#endif
internal import Synchronization

/// An exec credential plugin from a kubeconfig (`client.authentication.k8s.io/v1` ExecCredential).
public struct ExecPlugin: Sendable {
    /// The program (resolved against the kubeconfig's directory when it contains a slash, else on `PATH`).
    public var command: String
    /// Its arguments.
    public var args: [String]
    /// Extra environment variables for it.
    public var env: [(name: String, value: String)]
    /// The ExecCredential version it speaks.
    public var apiVersion: String
    /// How long one run may take before the plugin and every process it started are killed.
    public var timeout: Duration = .seconds(60)

    init(config: JSONObject, dir: String, what: String, environment: [String: String]) throws(KubeConfigError) {
        guard let command = config["command"]?.stringValue, !command.isEmpty else {
            throw KubeConfigError("\(what): exec: command is not set")
        }
        // A relative command with a slash is relative to the kubeconfig's directory, as in client-go.
        self.command = command.contains("/") ? KubeConfigLoader.resolve(command, dir: dir) : command
        args = (config["args"]?.arrayValue ?? []).compactMap(\.stringValue)
        env = (config["env"]?.arrayValue ?? []).compactMap { e in
            guard let n = e["name"]?.stringValue, let v = e["value"]?.stringValue else { return nil }
            return (n, v)
        }
        apiVersion = config["apiVersion"]?.stringValue ?? "client.authentication.k8s.io/v1"
    }
}

/// Produces the bearer token for each request: fixed, re-read from a rotating file, or from an exec plugin
/// (cached until its `expirationTimestamp`).
final class TokenSource: Sendable {
    private let credentials: KubeConfig.Credentials
    private let cache = Mutex<(token: String, stamp: Date?)?>(nil)
    private let tokenReadAt = Mutex<Date?>(nil)
    /// The plugin run in progress: concurrent requests that find no valid token wait for one run.
    private let pluginRun = Mutex<Task<Result<String, KubeError>, Never>?>(nil)

    init(_ credentials: KubeConfig.Credentials) { self.credentials = credentials }

    /// The token to send now, or nil when there are no token credentials.
    func token() async throws(KubeError) -> String? {
        switch credentials {
        case .none:
            return nil
        case .token(let t):
            return t
        case .tokenFile(let path):
            // The kubelet rotates a projected token by swapping the `..data` symlink: look at the resolved file,
            // and re-read at least once a minute in any case (as client-go does).
            let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            let mtime = (try? FileManager.default.attributesOfItem(atPath: resolved)[.modificationDate]) as? Date
            if let cached = cache.withLock({ $0 }), cached.stamp == mtime, mtime != nil, let read = tokenReadAt.withLock({ $0 }),
               Date().timeIntervalSince(read) < 60 {
                return cached.token
            }
            tokenReadAt.withLock { $0 = Date() }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KubeError(message: "cannot read token file \(path)")
            }
            let t = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            cache.withLock { $0 = (t, mtime) }
            return t
        case .exec(let plugin):
            if let cached = cache.withLock({ $0 }) {
                if let expiry = cached.stamp {
                    if expiry > Date() { return cached.token }
                } else {
                    return cached.token
                }
            }
            let run = pluginRun.withLock { running in
                if let running { return running }
                let task = Task { () -> Result<String, KubeError> in
                    defer { self.pluginRun.withLock { $0 = nil } }
                    do throws(KubeError) {
                        let (t, expiry) = try await self.runPlugin(plugin)
                        self.cache.withLock { $0 = (t, expiry) }
                        return .success(t)
                    } catch {
                        return .failure(error)
                    }
                }
                running = task
                return task
            }
            return try await run.value.get()
        }
    }

    /// Forgets a cached exec token (after a 401, as client-go does).
    func invalidate() {
        switch credentials {
        case .exec, .tokenFile: cache.withLock { $0 = nil }
        default: break
        }
    }

    private func runPlugin(_ plugin: ExecPlugin) async throws(KubeError) -> (String, Date?) {
        var env = plugin.env
        env.append(("KUBERNETES_EXEC_INFO", #"{"kind":"ExecCredential","apiVersion":"\#(plugin.apiVersion)","spec":{"interactive":false}}"#))
        let result = await ExecLimits.run(plugin.command, plugin.args, env: env, stdin: nil, timeout: plugin.timeout, what: "exec plugin \(plugin.command)")
        let (code, out, errLine) = try result.get()
        guard code == 0 else {
            throw KubeError(message: "exec plugin \(plugin.command) exited with status \(code)" + (errLine.isEmpty ? "" : ": \(errLine)"))
        }
        guard let value = try? JSONParser.parse(out), value["kind"]?.stringValue == "ExecCredential" else {
            throw KubeError(message: "exec plugin \(plugin.command): output is not an ExecCredential")
        }
        guard let token = value["status"]?["token"]?.stringValue, !token.isEmpty else {
            throw KubeError(message: "exec plugin \(plugin.command): ExecCredential has no status.token")
        }
        var expiry: Date?
        if let stamp = value["status"]?["expirationTimestamp"]?.stringValue {
            guard let d = RFC3339.parse(stamp).map({ Date(timeIntervalSince1970: TimeInterval($0)) }) else {
                throw KubeError(message: "exec plugin \(plugin.command): status.expirationTimestamp \(KubeNames.goQuote(stamp)) is not RFC 3339")
            }
            expiry = d
        }
        return (token, expiry)
    }
}

/// Bounds on an exec credential plugin: its run time, what it may print, and what of its stderr an error shows.
enum ExecLimits {
    /// An ExecCredential is a few KiB; 1 MiB of stdout is not one.
    static let maxStdout = 1 << 20
    static let maxStderr = 64 << 10
    /// The longest stderr excerpt an error message carries.
    static let maxErrorLine = 200

    /// Runs `command` (a path, or a name looked up on PATH) with `args` and the process environment plus `env`,
    /// writing `stdin` (when given) to it, in its own process group: at `timeout`, or when its output passes
    /// `maxStdout`, the whole group is killed, so a child it started cannot keep the pipes open. stderr is drained
    /// on its own thread (a chatty plugin cannot block on a full pipe); both streams are read up to their caps
    /// only. The answer: exit status, stdout, and stderr's first line redacted (`redactedLine`).
    /// Cancelling the calling task stops the process group at once (a shutdown never waits for a plugin's timeout).
    static func run(_ command: String, _ args: [String], env extra: [(String, String)], stdin: [UInt8]?, timeout: Duration,
                    what: String) async -> Result<(Int32, [UInt8], String), KubeError> {
        let started = ProcessGroup()
        return await withTaskCancellationHandler {
            await runOffPool(command, args, env: extra, stdin: stdin, timeout: timeout, what: what, group: started)
        } onCancel: {
            started.cancel()
        }
    }

    /// The process group of a run, for a cancellation that may come before or after it started.
    final class ProcessGroup: Sendable {
        private let state = Mutex<(pid: Int32, cancelled: Bool)>((0, false))
        /// Records the started process; false (and it is killed) when the run was already cancelled.
        func started(_ pid: Int32) -> Bool {
            let cancelled = state.withLock { s in
                s.pid = pid
                return s.cancelled
            }
            if cancelled { Self.kill(pid) }
            return !cancelled
        }
        func cancel() {
            let pid = state.withLock { s in
                s.cancelled = true
                return s.pid
            }
            if pid != 0 { Self.kill(pid) }
        }
        var isCancelled: Bool { state.withLock { $0.cancelled } }
        static func kill(_ pid: Int32) {
            _ = Foundation.kill(-pid, SIGKILL)
            _ = Foundation.kill(pid, SIGKILL)
        }
    }

    private static func runOffPool(_ command: String, _ args: [String], env extra: [(String, String)], stdin: [UInt8]?, timeout: Duration,
                                   what: String, group: ProcessGroup) async -> Result<(Int32, [UInt8], String), KubeError> {
        await offPool { () -> Result<(Int32, [UInt8], String), KubeError> in
            let p = Process()
            if command.contains("/") {
                p.executableURL = URL(fileURLWithPath: command)
                p.arguments = args
            } else {
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                p.arguments = [command] + args
            }
            var env = ProcessInfo.processInfo.environment
            for (n, v) in extra { env[n] = v }
            p.environment = env
            let out = Pipe()
            let err = Pipe()
            let input = Pipe()
            p.standardOutput = out
            p.standardError = err
            p.standardInput = stdin == nil ? FileHandle.nullDevice : input
            do { try p.run() } catch {
                return .failure(KubeError(message: "\(what): cannot start: \(error.localizedDescription)"))
            }
            let pid = p.processIdentifier
            let killGroup: @Sendable () -> Void = { ProcessGroup.kill(pid) }
            _ = group.started(pid)
            let errData = Mutex<[UInt8]>([])
            let errDone = DispatchSemaphore(value: 0)
            let errHandle = err.fileHandleForReading
            Thread {
                let d = read(errHandle, cap: maxStderr, drain: true)
                errData.withLock { $0 = d.bytes }
                errDone.signal()
            }.start()
            if let stdin {
                // Written on its own thread: a plugin that never reads must not block this one.
                let writer = input.fileHandleForWriting
                Thread {
                    try? writer.write(contentsOf: Data(stdin))
                    try? writer.close()
                }.start()
            }
            let fired = Flag()
            let timer = DispatchWorkItem {
                fired.set()
                killGroup()
            }
            let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: timer)
            let o = read(out.fileHandleForReading, cap: maxStdout)
            if o.truncated { killGroup() }
            errDone.wait()
            p.waitUntilExit()
            timer.cancel()
            if o.truncated {
                return .failure(KubeError(message: "\(what): output larger than \(maxStdout >> 10) KiB; the plugin was stopped"))
            }
            if group.isCancelled {
                return .failure(KubeError(message: "\(what): cancelled; the plugin and the processes it started were stopped"))
            }
            if fired.isSet {
                return .failure(KubeError(message: "\(what): no answer within \(timeout); the plugin and the processes it started were stopped"))
            }
            return .success((p.terminationStatus, o.bytes, redactedLine(errData.withLock { $0 })))
        }
    }

    /// A flag one thread sets and another reads.
    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .releasing) }
        var isSet: Bool { value.load(ordering: .acquiring) }
    }

    /// Reads `handle` until its end or past `cap` bytes (then `truncated`). With `drain`, reading goes on to the
    /// end, keeping only the first `cap` bytes (stderr: the plugin must never block on a full pipe); without, it
    /// stops there (stdout: the caller then stops the plugin).
    static func read(_ handle: FileHandle, cap: Int, drain: Bool = false) -> (bytes: [UInt8], truncated: Bool) {
        var bytes: [UInt8] = []
        var truncated = false
        while let chunk = try? handle.read(upToCount: 64 << 10), !chunk.isEmpty {
            if truncated { continue }
            bytes.append(contentsOf: chunk)
            if bytes.count > cap {
                bytes.removeLast(bytes.count - cap)
                truncated = true
                if !drain { break }
            }
        }
        return (bytes, truncated)
    }

    /// The first non-empty line of a plugin's stderr, at most `maxErrorLine` characters, with anything that looks
    /// like a credential (a run of 24 or more token characters: base64, JWT, hex) replaced by `[redacted]`.
    static func redactedLine(_ stderr: [UInt8]) -> String {
        let text = String(decoding: stderr.prefix(maxStderr), as: UTF8.self)
        guard let line = text.split(whereSeparator: \.isNewline).first(where: { !$0.allSatisfy(\.isWhitespace) }) else { return "" }
        func tokenChar(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || "+/=_-.".contains(c)) }
        var out = ""
        var run = ""
        func flush() {
            out += run.count >= 24 ? "[redacted]" : run
            run = ""
        }
        for c in line {
            if tokenChar(c) { run.append(c) } else { flush(); out.append(c) }
        }
        flush()
        let trimmed = out.trimmingCharacters(in: .whitespaces)
        return trimmed.count > maxErrorLine ? String(trimmed.prefix(maxErrorLine)) + "…" : trimmed
    }
}

/// Runs blocking work on a dedicated thread, away from the cooperative pool.
func offPool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { cont in
        let t = Thread { cont.resume(returning: work()) }
        t.start()
    }
}
