// `dynsecret-bench controller`: the `dynsecret controller` process (release build) against an in-process
// KubeEmulator with 1 source Secret and 2,000 target namespaces. Measures the time from process start until every
// replica exists and the writes that took (emulator counters), then the propagation latency of one source change
// to each of the 2,000 replicas (p50/p99/max, from the time the update was acknowledged to the time the replica's
// watch event arrived in the benchmark process), the writes of that change, RSS, and the SIGTERM exit time.
// `dynsecret replicate --once` on the same cluster is timed in the same run as the reference for one pass.
//
//   swift build -c release --product dynsecret && swift build -c release --product dynsecret-bench
//   .build/release/dynsecret-bench controller [--runs 3] [--dynsecret PATH]

import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Synchronization

final class ReplicaTimes: Sendable {
    let seen = Mutex<[String: (value: String, at: ContinuousClock.Instant)]>([:])
    func record(_ key: String, _ value: String) { seen.withLock { $0[key] = (value, .now) } }
    func count(_ value: String) -> Int { seen.withLock { $0.values.filter { $0.value == value }.count } }
    func times(_ value: String) -> [ContinuousClock.Instant] { seen.withLock { $0.values.filter { $0.value == value }.map(\.at) } }
}

func benchController(_ o: Options, namespaces: Int) async throws {
    guard let dynsecret = resolve(o.dynsecret) else { throw EmulatorError("dynsecret not found: \(o.dynsecret) (build it in release mode first)") }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-controller-bench-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let policy = dir + "/policy.yaml"
    try Data(teamPolicyYAML.utf8).write(to: URL(fileURLWithPath: policy))

    struct Run {
        var converge: Double; var convergeWrites: Int; var updateWrites: Int
        var p50: Double; var p99: Double; var max: Double
        var hwm: Int; var rss: Int; var stop: Double; var once: Double
    }
    var runs: [Run] = []
    for run in 0..<o.runs {
        let kubeconfig = dir + "/kubeconfig-\(run)"
        let (emulator, admin, created) = try await startTeamCluster(namespaces: namespaces, kubeconfig: kubeconfig, value: "bench-v1")
        var source = created
        // Watch the replicas from the benchmark process to time each one.
        let times = ReplicaTimes()
        let watcher = Task {
            var opts = ListOptions(labelSelector: "dynsecret.io/replica=true")
            opts.resourceVersion = String(emulator.resourceVersion)
            opts.timeoutSeconds = 600
            for try await event in admin.watch(.secrets, options: opts) where event.type == "ADDED" || event.type == "MODIFIED" {
                let key = (event.object["metadata"]?["namespace"]?.stringValue ?? "") + "/" + (event.object["metadata"]?["name"]?.stringValue ?? "")
                let value = event.object["data"]?["token"]?.stringValue.flatMap { Base64.decode($0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
                times.record(key, value)
            }
        }
        emulator.resetCounters()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: dynsecret)
        p.arguments = ["controller", "--policy", policy, "--kubeconfig", kubeconfig, "--health-addr", "off", "--metrics-addr", "off", "--log-level", "warning"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        let started = ContinuousClock.now
        try p.run()
        while times.count("bench-v1") < namespaces {
            try await Task.sleep(for: .milliseconds(5))
            if ContinuousClock.now - started > .seconds(300) { throw EmulatorError("no convergence in 300 s") }
        }
        let converge = (ContinuousClock.now - started).seconds
        try await Task.sleep(for: .seconds(1))
        func writes() -> Int { ["create", "update", "patch", "delete"].reduce(0) { $0 + emulator.counters()[$1, default: 0] } }
        let convergeWrites = writes()
        source.data = ["token": Array("bench-v2".utf8)]
        source = try await admin.update(source)
        let changed = ContinuousClock.now
        emulator.resetCounters()
        while times.count("bench-v2") < namespaces {
            try await Task.sleep(for: .milliseconds(5))
            if ContinuousClock.now - changed > .seconds(300) { throw EmulatorError("the change did not propagate in 300 s") }
        }
        let latencies = times.times("bench-v2").map { ($0 - changed).seconds }.sorted()
        try await Task.sleep(for: .seconds(1))
        let updateWrites = writes()
        let status = (try? String(contentsOfFile: "/proc/\(p.processIdentifier)/status", encoding: .utf8)) ?? ""
        func field(_ f: String) -> Int {
            status.split(separator: "\n").first { $0.hasPrefix(f) }.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0
        }
        let t0 = ContinuousClock.now
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let stop = (ContinuousClock.now - t0).seconds
        watcher.cancel()
        // The reference: one `replicate --once` pass that updates every replica, on the same cluster.
        source.data = ["token": Array("bench-v3".utf8)]
        source = try await admin.update(source)
        let o0 = ContinuousClock.now
        let code = try await runToEnd(dynsecret, ["replicate", "--policy", policy, "--once", "--kubeconfig", kubeconfig], home: dir)
        let once = (ContinuousClock.now - o0).seconds
        guard code == 0 else { throw EmulatorError("replicate --once exited \(code)") }
        runs.append(Run(converge: converge, convergeWrites: convergeWrites, updateWrites: updateWrites,
                        p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.last ?? 0,
                        hwm: field("VmHWM:"), rss: field("VmRSS:"), stop: stop, once: once))
        await emulator.stop()
    }
    print("benchmark: controller (dynsecret controller, 1 source -> \(namespaces) namespaces, kube-emulator, \(o.runs) runs, default --workers 32, release)")
    for (i, r) in runs.enumerated() {
        print(String(format: "  run %d: convergence %.3f s, writes %d / needed %d = %.2f; source change: %d writes / %d = %.2f, latency p50 %.0f ms p99 %.0f ms max %.0f ms; replicate --once of the same change %.3f s; peak RSS %d KiB, RSS %d KiB; SIGTERM exit %.2f s",
                     i + 1, r.converge, r.convergeWrites, namespaces, Double(r.convergeWrites) / Double(namespaces), r.updateWrites, namespaces,
                     Double(r.updateWrites) / Double(namespaces), r.p50 * 1000, r.p99 * 1000, r.max * 1000, r.once, r.hwm, r.rss, r.stop))
    }
    let med = { (xs: [Double]) in percentile(xs, 0.5) }
    print(String(format: "  median: convergence %.3f s, propagation p50 %.0f ms p99 %.0f ms, max %.0f ms; ratio propagation max / replicate --once: %.2f",
                 med(runs.map(\.converge)), med(runs.map(\.p50)) * 1000, med(runs.map(\.p99)) * 1000, med(runs.map(\.max)) * 1000,
                 med(runs.map(\.max)) / med(runs.map(\.once))))
}
