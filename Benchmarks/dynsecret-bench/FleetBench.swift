// `dynsecret-bench fleet`: one `dynsecret controller` in a hub keeping one pull secret current in N labelled
// namespaces of each of M member clusters, every cluster its own `kube-emulator` process. Measures convergence,
// propagation p50/p99/max of a source change across all members, writes ÷ needed and the controller's RSS; then the
// peer, the way users script it today: the same kind of change applied by M sequential `replicate --once` runs, one
// per cluster, timed from the first start to the last exit. `--latency-ms N` adds N ms to every request of each
// member's API server (members in other regions); the hub stays local.
//
//   swift build -c release --static-swift-stdlib --product dynsecret --product kube-emulator --product dynsecret-bench
//   .build/release/dynsecret-bench fleet [--members 10] [--namespaces 1000] [--workers 4] [--latency-ms 0]

import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Synchronization

func benchFleet(_ args: ArraySlice<String>) async throws {
    var members = 10, namespaces = 1_000, workers = 4, latency = 0
    var dynsecretPath = ".build/release/dynsecret", emulatorPath = ".build/release/kube-emulator"
    var it = args.makeIterator()
    while let a = it.next() {
        switch a {
        case "--members": members = Int(it.next() ?? "") ?? members
        case "--namespaces": namespaces = Int(it.next() ?? "") ?? namespaces
        case "--workers": workers = Int(it.next() ?? "") ?? workers
        case "--latency-ms": latency = Int(it.next() ?? "") ?? latency
        case "--dynsecret": dynsecretPath = it.next() ?? dynsecretPath
        case "--emulator": emulatorPath = it.next() ?? emulatorPath
        default:
            FileHandle.standardError.write(Data("unknown option \(a)\n".utf8))
            exit(2)
        }
    }
    guard let dynsecret = resolve(dynsecretPath) else { throw EmulatorError("dynsecret not found: \(dynsecretPath) (build it in release mode first)") }
    guard let emulator = resolve(emulatorPath) else { throw EmulatorError("kube-emulator not found: \(emulatorPath) (build it in release mode first)") }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-fleet-bench-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let replicas = members * namespaces
    print("benchmark: fleet (dynsecret controller in a hub, 1 source -> \(namespaces) labelled namespaces in each of \(members) member clusters = \(replicas) replicas; \(members + 1) kube-emulator processes; --workers \(workers) per cluster; \(latency) ms added per member request; release)")

    let hub = try await EmulatorProcess(emulator, dir: dir, name: "hub")
    var clusters: [EmulatorProcess] = []
    for i in 0..<members { clusters.append(try await EmulatorProcess(emulator, dir: dir, name: "m-\(i)", extra: ["--latency-ms", String(latency)])) }
    defer { for e in [hub] + clusters { e.stop() } }
    _ = try await hub.client.create(.namespaces, .object(JSONObject([("apiVersion", .string("v1")), ("kind", .string("Namespace")),
                                                                      ("metadata", .object(JSONObject([("name", .string("platform"))])))])))
    var source = try await hub.client.create(Secret(metadata: ObjectMeta(name: "pull-0", namespace: "platform"), type: SecretType.dockerConfigJSON,
                                                    data: [".dockerconfigjson": scalePayload("v1", 0)]))
    let memberClients = clusters.map(\.client)
    let namespaceCount = namespaces
    try await withThrowingTaskGroup(of: Void.self) { group in
        for c in memberClients {
            group.addTask {
                try await concurrently(namespaceCount, width: 8) { i in
                    _ = try await c.create(.namespaces, .object(JSONObject([("apiVersion", .string("v1")), ("kind", .string("Namespace")),
                        ("metadata", .object(JSONObject([("name", .string(scaleNamespace(i))), ("labels", .object(JSONObject([("pull", .string("yes"))])))])))])))
                }
            }
        }
        try await group.waitForAll()
    }
    func kubeconfig(_ which: [Int]) -> String {
        var out = "apiVersion: v1\nkind: Config\nclusters:\n"
        for i in which { out += "- {name: m-\(i), cluster: {server: \"\(clusters[i].client.config.server)\"}}\n" }
        out += "users:\n- {name: bench, user: {}}\ncontexts:\n"
        for i in which { out += "- {name: m-\(i), context: {cluster: m-\(i), user: bench}}\n" }
        return out
    }
    let memberConfig = dir + "/members.kubeconfig"
    try Data(kubeconfig(Array(0..<members)).utf8).write(to: URL(fileURLWithPath: memberConfig))
    let policy = dir + "/fleet.yaml"
    try Data("""
        apiVersion: dynsecret.io/v1alpha1
        kind: ReplicationPolicy
        metadata: {name: fleet}
        spec:
          clusters:
          - {name: members, contextPattern: "m-*"}
          rules:
          - name: pull
            source: {namespace: platform, name: pull-0}
            targets:
              namespaceSelector: {matchLabels: {pull: "yes"}}
              clusters: [members]
        """.utf8).write(to: URL(fileURLWithPath: policy))

    // The benchmark's own watch in every member: each replica's source version.
    let counters = clusters.map { _ in VersionCounter() }
    let watchers = zip(clusters, counters).map { timingWatch($0.client, $1, sources: 1) }
    defer { for w in watchers { w.cancel() } }
    func count(_ v: String) -> Int { counters.reduce(0) { $0 + $1.count(v) } }
    func writes() async throws -> Int {
        try await Task.sleep(for: .milliseconds(1100))
        var total = 0
        for c in clusters { total += try await c.writes() - 0 }
        return total
    }
    let base = try await writes()

    let p = Process()
    p.executableURL = URL(fileURLWithPath: dynsecret)
    p.arguments = ["controller", "--policy", policy, "--kubeconfig", hub.kubeconfig, "--member-kubeconfig", memberConfig, "--cluster-name", "hub",
                   "--health-addr", "off", "--metrics-addr", "off", "--log-level", "warning", "--workers", String(workers)]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    let started = ContinuousClock.now
    try p.run()
    while count("v1") < replicas {
        try await Task.sleep(for: .milliseconds(20))
        if ContinuousClock.now - started > .seconds(1200) { throw EmulatorError("no convergence in 1200 s (\(count("v1")) of \(replicas))") }
    }
    let converge = (ContinuousClock.now - started).seconds
    let createWrites = try await writes() - base

    let before = try await writes()
    source.data = [".dockerconfigjson": scalePayload("v2", 0)]
    source = try await hub.client.update(source)
    let changed = ContinuousClock.now
    while count("v2") < replicas {
        try await Task.sleep(for: .milliseconds(20))
        if ContinuousClock.now - changed > .seconds(1200) { throw EmulatorError("the change did not propagate in 1200 s (\(count("v2")) of \(replicas))") }
    }
    let latencies = counters.flatMap { $0.arrivals() }.map { ($0 - changed).seconds }.sorted()
    let updateWrites = try await writes() - before
    let hwm = procStatus(p.processIdentifier, "VmHWM:")
    let cpu = cpuSeconds(p.processIdentifier)
    kill(p.processIdentifier, SIGTERM)
    p.waitUntilExit()

    // The peer: the next change, applied by one `replicate --once` per cluster, one after another.
    source.data = [".dockerconfigjson": scalePayload("v1", 0)]
    source = try await hub.client.update(source)
    let t0 = ContinuousClock.now
    for i in 0..<members {
        let one = dir + "/m-\(i).kubeconfig.single"
        try Data(kubeconfig([i]).utf8).write(to: URL(fileURLWithPath: one))
        _ = try timed(dynsecret, ["replicate", "--policy", policy, "--kubeconfig", hub.kubeconfig, "--member-kubeconfig", one, "--cluster-name", "hub", "--once"], stdin: nil)
    }
    let sequential = (ContinuousClock.now - t0).seconds
    let peerCorrect = count("v1") == replicas

    let maxLatency = latencies.last ?? 0
    print(String(format: "  initial convergence: %.2f s; writes %d / needed %d = %.2f", converge, createWrites, replicas, Double(createWrites) / Double(replicas)))
    print(String(format: "  source change across all members: propagation p50 %.2f s, p99 %.2f s, max %.2f s; writes %d / needed %d = %.2f",
                 percentile(latencies, 0.5), percentile(latencies, 0.99), maxLatency, updateWrites, replicas, Double(updateWrites) / Double(replicas)))
    print(String(format: "  controller: peak RSS %.1f MiB, CPU %.1f s", Double(hwm) / 1024, cpu))
    print(String(format: "  peer: %d sequential `replicate --once` runs, one per cluster, for the same kind of change: %.2f s%@",
                 members, sequential, peerCorrect ? "" : " (NOT every replica updated)"))
    print(String(format: "  ratio controller propagation max / sequential runs: %.2f  (goal: <= 0.5)", maxLatency / sequential))
}
