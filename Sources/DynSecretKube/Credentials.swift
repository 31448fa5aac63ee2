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
        let result = await offPool { () -> Result<(Int32, [UInt8], String), KubeError> in
            let p = Process()
            if plugin.command.contains("/") {
                p.executableURL = URL(fileURLWithPath: plugin.command)
                p.arguments = plugin.args
            } else {
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                p.arguments = [plugin.command] + plugin.args
            }
            var env = ProcessInfo.processInfo.environment
            for (n, v) in plugin.env { env[n] = v }
            env["KUBERNETES_EXEC_INFO"] = #"{"kind":"ExecCredential","apiVersion":"\#(plugin.apiVersion)","spec":{"interactive":false}}"#
            p.environment = env
            let out = Pipe()
            let err = Pipe()
            p.standardOutput = out
            p.standardError = err
            p.standardInput = FileHandle.nullDevice
            do { try p.run() } catch {
                return .failure(KubeError(message: "exec plugin \(plugin.command): cannot start: \(error.localizedDescription)"))
            }
            // Drain stderr on its own thread so a chatty plugin cannot block on a full pipe, and end a plugin
            // that runs longer than a minute.
            let errData = Mutex<Data>(Data())
            let errDone = DispatchSemaphore(value: 0)
            let errHandle = err.fileHandleForReading
            Thread {
                let d = errHandle.readDataToEndOfFile()
                errData.withLock { $0 = d }
                errDone.signal()
            }.start()
            let pid = p.processIdentifier
            let timer = DispatchWorkItem { _ = kill(pid, SIGKILL) }
            DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: timer)
            let o = out.fileHandleForReading.readDataToEndOfFile()
            errDone.wait()
            p.waitUntilExit()
            timer.cancel()
            let e = errData.withLock { $0 }
            let firstErrLine = String(decoding: e, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            return .success((p.terminationStatus, Array(o), firstErrLine))
        }
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

/// Runs blocking work on a dedicated thread, away from the cooperative pool.
func offPool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { cont in
        let t = Thread { cont.resume(returning: work()) }
        t.start()
    }
}
