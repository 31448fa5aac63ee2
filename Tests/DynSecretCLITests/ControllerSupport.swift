import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Synchronization
import Testing

/// A `dynsecret controller` child process whose standard output and standard error go to a log file.
final class ControllerProcess: @unchecked Sendable {
    let process: Process
    let logPath: String
    let started = ContinuousClock.now

    init(_ args: [String], log: String, environment: [String: String] = [:]) throws {
        guard let bin = dynsecretBinary else { throw TestFailure("the dynsecret binary was not found next to the tests") }
        logPath = log
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process = try launch(bin, ["controller"] + args, stdout: log, stderr: log, environment: env)
    }

    var pid: Int32 { process.processIdentifier }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }

    /// A port the controller logged (`health` or `metrics`), once it did.
    func port(_ which: String, timeout: Duration = .seconds(20)) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for line in log.split(separator: "\n") where line.contains("endpoints listening") {
                // text: `health=1234`; JSON: `"health":"1234"`
                for marker in ["\(which)=", "\"\(which)\":\""] {
                    guard let r = line.range(of: marker) else { continue }
                    if let p = Int(line[r.upperBound...].prefix(while: \.isNumber)) { return p }
                }
            }
            if !isRunning { throw TestFailure("controller exited (\(process.terminationStatus)): \(log.suffix(2000))") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("controller did not log its \(which) port: \(log.suffix(2000))")
    }

    /// A KiB field of the process's /proc status (`VmRSS:`, `VmHWM:`), or nil when it cannot be read.
    func statusKiB(_ field: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field) {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        }
        return nil
    }

    /// Sends `signal` and waits for the exit; returns the exit status and how long the exit took.
    func stop(_ signal: Int32 = SIGTERM, timeout: Duration = .seconds(20)) async -> (status: Int32, took: Duration) {
        let t0 = ContinuousClock.now
        kill(pid, signal)
        let deadline = t0 + timeout
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        let took = ContinuousClock.now - t0
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
            return (-1, took)
        }
        process.waitUntilExit()
        return (process.terminationStatus, took)
    }

    deinit {
        if process.isRunning { kill(pid, SIGKILL) }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// GET over plain HTTP with curl (a real, independent client); returns status and body.
func httpGet(_ url: String) throws -> (status: Int, body: String) {
    let r = try runProcess("/usr/bin/curl", ["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "5", url])
    var lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
    let code = Int(lines.popLast() ?? "") ?? 0
    return (code, lines.joined(separator: "\n"))
}

/// Polls `condition` until it holds or `timeout` passes; returns the time it took, or nil on timeout.
func waitFor(_ timeout: Duration, every: Duration = .milliseconds(50), _ condition: () async throws -> Bool) async rethrows -> Duration? {
    let t0 = ContinuousClock.now
    while ContinuousClock.now - t0 < timeout {
        if try await condition() { return ContinuousClock.now - t0 }
        try? await Task.sleep(for: every)
    }
    return try await condition() ? ContinuousClock.now - t0 : nil
}

enum Fixtures {
    /// Sets (`on`) or removes the `dynsecret: on` label of namespace `ns` with a merge patch.
    static func label(_ c: KubeClient, _ ns: String, _ on: Bool) async throws {
        _ = try await c.mergePatch(.namespaces, name: ns, .object(JSONObject([("metadata", .object(JSONObject([
            ("labels", .object(JSONObject([("dynsecret", on ? .string("on") : .null)]))),
        ])))])))
    }

    static func namespace(_ name: String, labels: [String: String] = [:]) -> JSONValue {
        var meta = JSONObject([("name", .string(name))])
        if !labels.isEmpty { meta["labels"] = .object(JSONObject(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })) }
        return .object(JSONObject([("apiVersion", .string("v1")), ("kind", .string("Namespace")), ("metadata", .object(meta))]))
    }

    static func secret(_ ns: String, _ name: String, _ value: String, labels: [String: String] = [:]) -> Secret {
        var s = Secret(metadata: ObjectMeta(name: name, namespace: ns, labels: labels))
        s.data = ["token": Array(value.utf8)]
        return s
    }

    /// Creates namespaces `prefix-0000`… with `labels`, 8 at a time.
    static func createNamespaces(_ c: KubeClient, _ names: [String], labels: [String: String]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            let width = max(1, (names.count + 7) / 8)
            for start in stride(from: 0, to: names.count, by: width) {
                let part = Array(names[start..<min(names.count, start + width)])
                group.addTask { for n in part { _ = try await c.create(.namespaces, namespace(n, labels: labels)) } }
            }
            try await group.waitForAll()
        }
    }

    /// The replicas (by `namespace/name`) with the value of their `token` key.
    static func replicas(_ c: KubeClient) async throws -> [String: String] {
        var out: [String: String] = [:]
        for s in try await c.list(Secret.self, namespace: nil, options: ListOptions(labelSelector: "dynsecret.io/replica=true")).items {
            out[(s.metadata.namespace ?? "") + "/" + (s.metadata.name ?? "")] = s.data["token"].map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        return out
    }

    /// Writes to the cluster by `user` in the emulator's counters (create, update, patch, delete of anything).
    static func writes(_ counters: [String: Int], by user: String) -> Int {
        ["create", "update", "patch", "delete"].reduce(0) { $0 + (counters["\(user) \($1)"] ?? 0) }
    }
}

/// The replicas as a watch sees them (label `dynsecret.io/replica=true`), kept current in the background, so tests
/// can wait on them without listing 1,000 Secrets over and over (which would load the emulator they measure).
final class ReplicaWatch: Sendable {
    private let values = Mutex<[String: String]>([:])
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(_ c: KubeClient) async throws {
        let list = try await c.listAll(.secrets, options: ListOptions(labelSelector: "dynsecret.io/replica=true"))
        values.withLock { v in for o in list.items { v[Self.key(o)] = Self.token(o) } }
        var opts = ListOptions(labelSelector: "dynsecret.io/replica=true")
        opts.resourceVersion = list.resourceVersion
        opts.timeoutSeconds = 900
        let t = Task {
            var rv = list.resourceVersion
            while !Task.isCancelled {
                opts.resourceVersion = rv
                do {
                    for try await e in c.watch(.secrets, options: opts) {
                        if let v = e.object["metadata"]?["resourceVersion"]?.stringValue { rv = v }
                        switch e.type {
                        case "ADDED", "MODIFIED": self.values.withLock { $0[Self.key(e.object)] = Self.token(e.object) }
                        case "DELETED": self.values.withLock { _ = $0.removeValue(forKey: Self.key(e.object)) }
                        default: break
                        }
                    }
                } catch {
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        task.withLock { $0 = t }
    }

    static func key(_ o: JSONValue) -> String { (o["metadata"]?["namespace"]?.stringValue ?? "") + "/" + (o["metadata"]?["name"]?.stringValue ?? "") }
    static func token(_ o: JSONValue) -> String {
        o["data"]?["token"]?.stringValue.flatMap { Base64.decode($0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// `namespace/name` → value of the `token` key.
    var current: [String: String] { values.withLock { $0 } }

    func stop() { task.withLock { $0?.cancel() } }
    deinit { task.withLock { $0?.cancel() } }
}

/// A readers-writer gate over the heavy suites of this test target: heavy tests (`.heavy`) run concurrently with
/// each other, and a test that measures time (`.exclusive`) runs while none of them does — so the controller's
/// latency bounds are checked on a machine busy only with light tests, not with a 50,000-Secret load or checkov.
actor LoadGate {
    static let shared = LoadGate()
    private var readers = 0
    private var writer = false
    private var waitingWriters = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire(exclusive: Bool) async {
        if exclusive {
            waitingWriters += 1
            while writer || readers > 0 { await withCheckedContinuation { waiters.append($0) } }
            waitingWriters -= 1
            writer = true
        } else {
            while writer || waitingWriters > 0 { await withCheckedContinuation { waiters.append($0) } }
            readers += 1
        }
    }

    func release(exclusive: Bool) {
        if exclusive { writer = false } else { readers -= 1 }
        let w = waiters
        waiters = []
        for c in w { c.resume() }
    }
}

/// Runs each test of a suite (or one test) under the `LoadGate`.
struct LoadGateTrait: SuiteTrait, TestTrait, TestScoping {
    let exclusive: Bool
    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard testCase != nil else { return try await function() }
        await LoadGate.shared.acquire(exclusive: exclusive)
        do {
            try await function()
        } catch {
            await LoadGate.shared.release(exclusive: exclusive)
            throw error
        }
        await LoadGate.shared.release(exclusive: exclusive)
    }
}

extension Trait where Self == LoadGateTrait {
    /// A suite or test that loads the machine (many processes, large clusters, big files).
    static var heavy: Self { LoadGateTrait(exclusive: false) }
    /// A test that measures time: runs while no `.heavy` test does.
    static var exclusive: Self { LoadGateTrait(exclusive: true) }
}

/// An emulator over TLS (kubectl sends a bearer token over HTTPS only) with an admin token and a controller token
/// limited to `rules`: the admin's kubeconfig and client, kubectl as the admin, and the controller's kubeconfig.
struct TLSCluster {
    let emulator: KubeEmulator
    let dir: TempDir
    let ca: [UInt8]
    let adminConfig: String
    let admin: KubeClient
    let controllerToken: String

    static func start(admin: String, controller: String, rules: [TokenGrant.Rule]) async throws -> TLSCluster {
        let dir = try TempDir()
        try loopbackServerCertificate(in: dir)
        var options = EmulatorOptions()
        options.tokens = [TokenGrant(token: admin, user: "admin"), TokenGrant(token: controller, user: "controller", rules: rules)]
        options.tlsCertificatePath = dir.url.appendingPathComponent("server.crt").path
        options.tlsKeyPath = dir.url.appendingPathComponent("server.key").path
        let e = try await KubeEmulator.start(options)
        let ca = Array(try Data(contentsOf: dir.url.appendingPathComponent("ca.crt")))
        let adminConfig = try dir.file("admin-kubeconfig", e.kubeconfig(token: admin, caPEM: ca))
        return TLSCluster(emulator: e, dir: dir, ca: ca, adminConfig: adminConfig,
                          admin: KubeClient(config: try KubeConfigLoader.fromFiles([adminConfig], context: nil)), controllerToken: controller)
    }

    /// kubectl as the admin.
    func kubectl(_ args: [String], stdin: String? = nil) throws -> (code: Int32, stdout: String, stderr: String) {
        let r = try runProcess(kubectlPath!, ["--kubeconfig", adminConfig] + args, stdin: stdin)
        return (r.code, r.stdout, r.stderr)
    }

    /// The controller's kubeconfig file.
    func controllerConfig() throws -> String { try dir.file("kubeconfig", emulator.kubeconfig(token: controllerToken, caPEM: ca)) }
}
