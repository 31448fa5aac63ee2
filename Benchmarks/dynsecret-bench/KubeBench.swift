// `dynsecret-bench kube`: 2,000 Secret creates through DynSecretKube (libcurl, bounded concurrency) against
// `kubectl create -f` of a 2,000-item List, both against the same in-process KubeEmulator in the same run.
//
//   swift build -c release --product dynsecret-bench
//   .build/release/dynsecret-bench kube [--runs 3] [--count 2000] [--concurrency 16] [--kubectl PATH]

import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Synchronization

struct KubeBenchOptions {
    var runs = 3
    var count = 2000
    var concurrency = 16
    var kubectl = "kubectl"
}

final class BenchResult: Sendable {
    let error = Mutex<String?>(nil)
}

/// Entry point from main.swift (synchronous): runs the async benchmark and waits for it.
func benchKube(_ args: ArraySlice<String>) {
    var o = KubeBenchOptions()
    var it = args.makeIterator()
    while let a = it.next() {
        switch a {
        case "--runs": o.runs = Int(it.next() ?? "") ?? o.runs
        case "--count": o.count = Int(it.next() ?? "") ?? o.count
        case "--concurrency": o.concurrency = Int(it.next() ?? "") ?? o.concurrency
        case "--kubectl": o.kubectl = it.next() ?? o.kubectl
        default:
            FileHandle.standardError.write(Data("unknown option \(a)\n".utf8))
            exit(2)
        }
    }
    let options = o
    let result = BenchResult()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { try await runKubeBench(options) } catch { result.error.withLock { $0 = "\(error)" } }
        done.signal()
    }
    done.wait()
    if let e = result.error.withLock({ $0 }) {
        FileHandle.standardError.write(Data("error: \(e)\n".utf8))
        exit(1)
    }
}

func benchSecret(_ i: Int, namespace: String) -> JSONValue {
    .object(JSONObject([
        ("apiVersion", .string("v1")), ("kind", .string("Secret")),
        ("metadata", .object(JSONObject([("name", .string(String(format: "bench-%05d", i))), ("namespace", .string(namespace)),
                                         ("labels", .object(JSONObject([("app", .string("bench"))])))]))),
        ("type", .string("Opaque")),
        ("data", .object(JSONObject([("password", .string(Base64.encode(Array("value-\(i)-0123456789abcdef".utf8))))]))),
    ]))
}

func runKubeBench(_ o: KubeBenchOptions) async throws {
    guard let kubectl = resolve(o.kubectl) else { throw EmulatorError("kubectl not found: \(o.kubectl)") }
    let emulator = try await KubeEmulator.start(EmulatorOptions())
    defer { Task { await emulator.stop() } }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-kube-bench-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let kubeconfig = dir + "/kubeconfig"
    try Data(emulator.kubeconfig().utf8).write(to: URL(fileURLWithPath: kubeconfig))
    let admin = KubeClient(config: KubeConfig(server: emulator.url))

    var ours: [(seconds: Double, connections: Int, requests: Int)] = []
    var peer: [(seconds: Double, connections: Int, requests: Int)] = []
    for run in 0..<o.runs {
        // Each side gets fresh namespaces; alternate which goes first.
        for side in (run % 2 == 0 ? [0, 1] : [1, 0]) {
            let ns = "bench-\(side == 0 ? "ours" : "kubectl")-\(run)"
            _ = try await admin.create(.namespaces, .object(JSONObject([("apiVersion", .string("v1")), ("kind", .string("Namespace")),
                                                                         ("metadata", .object(JSONObject([("name", .string(ns))])))])))
            let before = emulator.counters()
            let clock = ContinuousClock()
            let start = clock.now
            if side == 0 {
                let client = KubeClient(config: KubeConfig(server: emulator.url), maxConcurrentRequests: o.concurrency)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    var next = 0
                    func add() {
                        let i = next
                        next += 1
                        group.addTask { _ = try await client.create(.secrets, namespace: ns, benchSecret(i, namespace: ns)) }
                    }
                    while next < min(o.concurrency, o.count) { add() }
                    while try await group.next() != nil { if next < o.count { add() } }
                }
            } else {
                let items = (0..<o.count).map { benchSecret($0, namespace: ns) }
                let list = JSONValue.object(JSONObject([("apiVersion", .string("v1")), ("kind", .string("List")), ("items", .array(items))]))
                let file = dir + "/list-\(run).json"
                try Data(GoJSONWriter.compact(list)).write(to: URL(fileURLWithPath: file))
                let code = try await runToEnd(kubectl, ["--kubeconfig", kubeconfig, "create", "-f", file], home: dir)
                guard code == 0 else { throw EmulatorError("kubectl create -f exited \(code)") }
            }
            let seconds = (clock.now - start).seconds
            let after = emulator.counters()
            let created = try await admin.list(.secrets, namespace: ns).items.count
            guard created == o.count else { throw EmulatorError("\(ns): \(created) secrets, expected \(o.count)") }
            let connections = after["connections", default: 0] - before["connections", default: 0]
            let requests = after.filter { $0.key.hasPrefix("anonymous ") }.values.reduce(0, +) - before.filter { $0.key.hasPrefix("anonymous ") }.values.reduce(0, +)
            if side == 0 { ours.append((seconds, connections, requests)) } else { peer.append((seconds, connections, requests)) }
        }
    }
    let medOurs = percentile(ours.map(\.seconds), 0.5)
    let medPeer = percentile(peer.map(\.seconds), 0.5)
    print("benchmark: kube (\(o.count) Secret creates against kube-emulator, \(o.runs) alternating runs each, release)")
    print(String(format: "  dynsecret (libcurl, %d concurrent)  median %.3f s  %.0f creates/s  connections %d  API requests %d",
                 o.concurrency, medOurs, Double(o.count) / medOurs, ours.last?.connections ?? 0, ours.last?.requests ?? 0))
    print(String(format: "  kubectl create -f (List)           median %.3f s  %.0f creates/s  connections %d  API requests %d",
                 medPeer, Double(o.count) / medPeer, peer.last?.connections ?? 0, peer.last?.requests ?? 0))
    print(String(format: "  ratio dynsecret/kubectl (median wall time): %.3f", medOurs / medPeer))
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Runs a command to completion and returns its exit status (waits without blocking a pool thread).
func runToEnd(_ path: String, _ args: [String], home: String) async throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    env["HOME"] = home
    p.environment = env
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    return try await withCheckedThrowingContinuation { cont in
        p.terminationHandler = { proc in cont.resume(returning: proc.terminationStatus) }
        do { try p.run() } catch {
            p.terminationHandler = nil
            cont.resume(throwing: error)
        }
    }
}
