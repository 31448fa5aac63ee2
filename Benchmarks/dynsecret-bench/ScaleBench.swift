// `dynsecret-bench scale`: the `dynsecret controller` process (release) against a `kube-emulator` process at scale:
// S sources in `platform` selected by label, copied into N labelled namespaces (N × S replicas). Measures initial
// convergence (process start → every replica exists), propagation of a change of every source (p50/p99/max over the
// replicas, from the last source update's answer to the arrival of the replica's new version on the benchmark's own
// watch), writes ÷ needed, peak RSS and RSS growth per managed object, CPU seconds per 1,000 writes, and idle CPU
// after convergence. The reference, same run, same machine: a fresh `kube-emulator` given the same creates and then
// the same updates by a tight client (16 requests at a time), before and after the controller run: the emulator's
// throughput ceiling.
//
//   swift build -c release --static-swift-stdlib --product dynsecret --product kube-emulator --product dynsecret-bench
//   .build/release/dynsecret-bench scale [--namespaces 20000] [--sources 5] [--workers 32] [--dynsecret PATH] [--emulator PATH]

import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Synchronization

struct ScaleOptions {
    var namespaces = 20_000
    var sources = 5
    var workers = 32
    var dynsecret = ".build/release/dynsecret"
    var emulator = ".build/release/kube-emulator"
}

func parseScaleOptions(_ args: ArraySlice<String>) -> ScaleOptions {
    var o = ScaleOptions()
    var it = args.makeIterator()
    while let a = it.next() {
        switch a {
        case "--namespaces": o.namespaces = Int(it.next() ?? "") ?? o.namespaces
        case "--sources": o.sources = Int(it.next() ?? "") ?? o.sources
        case "--workers": o.workers = Int(it.next() ?? "") ?? o.workers
        case "--dynsecret": o.dynsecret = it.next() ?? o.dynsecret
        case "--emulator": o.emulator = it.next() ?? o.emulator
        default:
            FileHandle.standardError.write(Data("unknown option \(a)\n".utf8))
            exit(2)
        }
    }
    return o
}

/// A `kube-emulator` process on a free loopback port, its kubeconfig and request counters in `dir`.
final class EmulatorProcess: Sendable {
    let process = Process()
    let kubeconfig: String
    let counters: String
    let client: KubeClient

    init(_ path: String, dir: String, name: String, extra: [String] = []) async throws {
        kubeconfig = dir + "/\(name).kubeconfig"
        counters = dir + "/\(name).counters"
        process.executableURL = URL(fileURLWithPath: path)
        // A watch window larger than the run's changes: the controller's watches never fall behind it (a real API
        // server's watch cache is time-based; relists are not what this measures).
        process.arguments = ["--kubeconfig-out", kubeconfig, "--counters-file", counters, "--watch-window", "2000000"] + extra
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { throw EmulatorError("kube-emulator exited before it was ready") }
            line += chunk
        }
        // "kube-emulator ready URL"
        guard let url = String(decoding: line, as: UTF8.self).split(separator: "\n").first?.split(separator: " ").last else {
            throw EmulatorError("kube-emulator did not say where it listens")
        }
        client = KubeClient(config: KubeConfig(server: String(url)), maxConcurrentRequests: 16)
    }

    /// Writes (create, update, patch, delete) counted by the emulator, from its counters file (written every second).
    func writes() async throws -> Int {
        try await Task.sleep(for: .milliseconds(1100))
        let data = try Data(contentsOf: URL(fileURLWithPath: counters))
        guard case .object(let o) = try JSONParser.parse(Array(data)) else { return 0 }
        return ["create", "update", "patch", "delete"].reduce(0) { total, verb in
            if case .number(let n)? = o[verb] { return total + (Int(n) ?? 0) }
            return total
        }
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

/// Runs `count` calls of `body` with at most `width` at once.
func concurrently(_ count: Int, width: Int = 16, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<width {
            group.addTask { for i in stride(from: w, to: count, by: width) { try await body(i) } }
        }
        try await group.waitForAll()
    }
}

func scaleNamespace(_ i: Int) -> String { String(format: "team-%05d", i) }

/// `platform` with `sources` Secrets `pull-K` labelled `bench: pull`, and `namespaces` namespaces labelled `pull: "yes"`.
func seedScaleCluster(_ c: KubeClient, namespaces: Int, sources: Int, value: String) async throws -> [Secret] {
    @Sendable func ns(_ name: String, labels: [(String, JSONValue)]) -> JSONValue {
        .object(JSONObject([("apiVersion", .string("v1")), ("kind", .string("Namespace")),
                            ("metadata", .object(JSONObject([("name", .string(name)), ("labels", .object(JSONObject(labels)))])))]))
    }
    _ = try await c.create(.namespaces, ns("platform", labels: []))
    var out: [Secret] = []
    for k in 0..<sources {
        out.append(try await c.create(Secret(metadata: ObjectMeta(name: "pull-\(k)", namespace: "platform", labels: ["bench": "pull"]),
                                             type: SecretType.dockerConfigJSON, data: [".dockerconfigjson": scalePayload(value, k)])))
    }
    try await concurrently(namespaces) { i in _ = try await c.create(.namespaces, ns(scaleNamespace(i), labels: [("pull", .string("yes"))])) }
    return out
}

/// A pull secret payload of a realistic size (one registry, a 40-character token).
func scalePayload(_ value: String, _ k: Int) -> [UInt8] {
    let auth = Base64.encode(Array("robot$bench-\(k):\(value)-0123456789abcdef0123456789".utf8))
    return Array(#"{"auths":{"registry-\#(k).example.com":{"username":"robot$bench-\#(k)","password":"\#(value)-0123456789abcdef0123456789","auth":"\#(auth)"}}}"#.utf8)
}

let scalePolicyYAML = """
    apiVersion: dynsecret.io/v1alpha1
    kind: ReplicationPolicy
    metadata: {name: scale}
    spec:
      rules:
      - name: pull
        source: {namespace: platform, selector: {matchLabels: {bench: pull}}}
        targets: {namespaceSelector: {matchLabels: {pull: "yes"}}}
    """

/// Counts replicas at each source version, from the benchmark's own watch of `dynsecret.io/replica=true`.
final class VersionCounter: Sendable {
    private let state = Mutex<(byValue: [String: Int], last: [String: ContinuousClock.Instant], at: [String: String])>(([:], [:], [:]))

    func record(_ key: String, _ value: String) {
        state.withLock { s in
            if let old = s.at[key] { s.byValue[old, default: 0] -= 1 }
            s.at[key] = value
            s.byValue[value, default: 0] += 1
            s.last[key] = .now
        }
    }
    func count(_ value: String) -> Int { state.withLock { $0.byValue[value] ?? 0 } }
    func arrivals() -> [ContinuousClock.Instant] { state.withLock { Array($0.last.values) } }
}

func procStatus(_ pid: Int32, _ field: String) -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    return status.split(separator: "\n").first { $0.hasPrefix(field) }.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0
}

/// User + system CPU seconds of a process, from /proc/PID/stat.
func cpuSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    return (Double(fields[11]) ?? 0) / ticks + (Double(fields[12]) ?? 0) / ticks
}

func benchScale(_ o: ScaleOptions) async throws {
    guard let dynsecret = resolve(o.dynsecret) else { throw EmulatorError("dynsecret not found: \(o.dynsecret) (build it in release mode first)") }
    guard let emulatorPath = resolve(o.emulator) else { throw EmulatorError("kube-emulator not found: \(o.emulator) (build it in release mode first)") }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-scale-bench-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let replicas = o.namespaces * o.sources
    print("benchmark: scale (dynsecret controller, \(o.sources) sources by label -> \(o.namespaces) labelled namespaces = \(replicas) replicas, kube-emulator process, --workers \(o.workers), release)")

    // 1. The ceiling: the same creates, then the same updates, by a tight client against a fresh emulator; then
    //    again against another fresh emulator with the benchmark's own timing watch open (the apparatus the
    //    controller run is measured with), timed until that watch has seen every write.
    //    The plain ceiling is measured again after the controller run (below): on this shared machine the same
    //    writes take up to 30 % longer from one minute to the next, so the ratios use the mean of the two.
    let (rawCreate0, rawUpdate0) = try await rawWrites(o, emulatorPath: emulatorPath, dir: dir, watched: false)
    print(String(format: "  emulator ceiling (tight client, 16 at a time): %d creates in %.2f s (%.0f/s), %d updates in %.2f s (%.0f/s)",
                 replicas, rawCreate0, Double(replicas) / rawCreate0, replicas, rawUpdate0, Double(replicas) / rawUpdate0))
    let (watchedCreate, watchedUpdate) = try await rawWrites(o, emulatorPath: emulatorPath, dir: dir, watched: true)
    print(String(format: "  the same with the benchmark's timing watch open: creates in %.2f s, updates in %.2f s",
                 watchedCreate, watchedUpdate))

    // 2. The controller.
    let em = try await EmulatorProcess(emulatorPath, dir: dir, name: "controller")
    var sources = try await seedScaleCluster(em.client, namespaces: o.namespaces, sources: o.sources, value: "v1")
    let baseWrites = try await em.writes()
    let versions = VersionCounter()
    let watcher = timingWatch(em.client, versions, sources: o.sources)
    let policy = dir + "/policy.yaml"
    try Data(scalePolicyYAML.utf8).write(to: URL(fileURLWithPath: policy))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: dynsecret)
    p.arguments = ["controller", "--policy", policy, "--kubeconfig", em.kubeconfig, "--health-addr", "off", "--metrics-addr", "off",
                   "--log-level", "warning", "--workers", String(o.workers)]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    let emCPU0 = cpuSeconds(em.process.processIdentifier), benchCPU0 = cpuSeconds(getpid())
    let started = ContinuousClock.now
    try p.run()
    // RSS right after start (before the first list arrives) is the baseline the growth is measured from: once the
    // process runs the dynsecret image (not the benchmark's forked copy) and has initialised.
    let image = URL(fileURLWithPath: dynsecret).resolvingSymlinksInPath().path
    while (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p.processIdentifier)/exe")) != image {
        try await Task.sleep(for: .milliseconds(2))
    }
    // Then until the runtime has loaded: two samples 10 ms apart within 256 KiB of each other (at most 1 s). A
    // sample taken while the image is still being mapped reads a few MiB and would inflate the growth per object.
    var rssStart = procStatus(p.processIdentifier, "VmRSS:")
    for _ in 0..<100 {
        try await Task.sleep(for: .milliseconds(10))
        let next = procStatus(p.processIdentifier, "VmRSS:")
        defer { rssStart = next }
        if next >= 8 * 1024 && abs(next - rssStart) <= 256 { break }
    }
    while versions.count("v1") < replicas {
        try await Task.sleep(for: .milliseconds(20))
        if ContinuousClock.now - started > .seconds(1200) { throw EmulatorError("no convergence in 1200 s (\(versions.count("v1")) of \(replicas))") }
    }
    let converge = (ContinuousClock.now - started).seconds
    let createWrites = try await em.writes() - baseWrites
    let cpuConverge = cpuSeconds(p.processIdentifier)
    let emConverge = cpuSeconds(em.process.processIdentifier) - emCPU0, benchConverge = cpuSeconds(getpid()) - benchCPU0
    // Idle: CPU over 3 s with nothing to do.
    let idle0 = cpuSeconds(p.processIdentifier)
    try await Task.sleep(for: .seconds(3))
    let idle = (cpuSeconds(p.processIdentifier) - idle0) / 3
    let rssConverged = procStatus(p.processIdentifier, "VmRSS:")

    // 3. Every source changes.
    let before = try await em.writes()
    for k in sources.indices {
        sources[k].data = [".dockerconfigjson": scalePayload("v2", k)]
        sources[k] = try await em.client.update(sources[k])
    }
    let changed = ContinuousClock.now
    while versions.count("v2") < replicas {
        try await Task.sleep(for: .milliseconds(20))
        if ContinuousClock.now - changed > .seconds(1200) { throw EmulatorError("the change did not propagate in 1200 s (\(versions.count("v2")) of \(replicas))") }
    }
    let latencies = versions.arrivals().map { ($0 - changed).seconds }.sorted()
    let updateWrites = try await em.writes() - before - o.sources  // less the benchmark's own source updates
    let cpuTotal = cpuSeconds(p.processIdentifier)
    let hwm = procStatus(p.processIdentifier, "VmHWM:")
    let rssEnd = procStatus(p.processIdentifier, "VmRSS:")
    kill(p.processIdentifier, SIGTERM)
    p.waitUntilExit()
    watcher.cancel()
    em.stop()

    let (rawCreate1, rawUpdate1) = try await rawWrites(o, emulatorPath: emulatorPath, dir: dir, watched: false)
    let rawCreate = (rawCreate0 + rawCreate1) / 2, rawUpdate = (rawUpdate0 + rawUpdate1) / 2
    print(String(format: "  emulator ceiling again, after the controller run: creates in %.2f s, updates in %.2f s; the ratios below use the means, %.2f s and %.2f s",
                 rawCreate1, rawUpdate1, rawCreate, rawUpdate))

    let objects = replicas + o.namespaces + o.sources
    let perObject = Double(max(0, rssConverged - rssStart)) * 1024 / Double(objects)
    print(String(format: "  initial convergence: %.2f s; writes %d / needed %d = %.2f; ratio to the emulator's raw create time: %.2f (with the timing watch: %.2f)",
                 converge, createWrites, replicas, Double(createWrites) / Double(replicas), converge / rawCreate, converge / watchedCreate))
    print(String(format: "    (convergence: controller CPU %.1f s, emulator CPU %.1f s, benchmark CPU %.1f s)", cpuConverge, emConverge, benchConverge))
    print(String(format: "  change of all %d sources: propagation p50 %.2f s, p99 %.2f s, max %.2f s; writes %d / needed %d = %.2f; ratio max to the raw update time: %.2f (with the timing watch: %.2f)",
                 o.sources, percentile(latencies, 0.5), percentile(latencies, 0.99), latencies.last ?? 0, updateWrites, replicas,
                 Double(updateWrites) / Double(replicas), (latencies.last ?? 0) / rawUpdate, (latencies.last ?? 0) / watchedUpdate))
    print(String(format: "  RSS: %.1f MiB at start, %.1f MiB converged, %.1f MiB at the end, peak %.1f MiB; growth per managed object (%d replicas + %d namespaces + %d sources): %.0f bytes",
                 Double(rssStart) / 1024, Double(rssConverged) / 1024, Double(rssEnd) / 1024, Double(hwm) / 1024, replicas, o.namespaces, o.sources, perObject))
    print(String(format: "  CPU: %.1f s to converge, %.1f s in all; %.2f s per 1,000 writes; idle after convergence %.1f%% of a core",
                 cpuConverge, cpuTotal, cpuTotal / Double(max(1, createWrites + updateWrites)) * 1000, idle * 100))
}

/// The benchmark's own watch of `dynsecret.io/replica=true`: records each replica's source version (v1 or v2).
///
/// The watch is part of the apparatus and shares the two cores with what it measures, so it reads each event line
/// only as far as it needs: the event type, the object's namespace and name, and whether its `.dockerconfigjson`
/// is one of the v2 payloads (compared as the base64 text the line carries). A full JSON parse of every event cost
/// the benchmark about 36 µs per event.
func timingWatch(_ client: KubeClient, _ versions: VersionCounter, sources: Int) -> Task<Void, any Error> {
    let v2 = Set((0..<sources).map { Array(Base64.encode(scalePayload("v2", $0)).utf8) })
    return Task {
        var opts = ListOptions(labelSelector: "dynsecret.io/replica=true")
        opts.resourceVersion = "0"
        opts.timeoutSeconds = 3600
        for try await line in client.watchLines(.secrets, options: opts) {
            guard line.starts(with: added) || line.starts(with: modified),
                  let meta = line.firstRange(of: metadataKey)?.upperBound,
                  let name = stringValue(line, after: nameKey, from: meta),
                  let namespace = stringValue(line, after: namespaceKey, from: meta) else { continue }
            let payload = stringValue(line, after: payloadKey, from: meta) ?? ""
            versions.record(namespace + "/" + name, v2.contains(Array(payload.utf8)) ? "v2" : "v1")
        }
    }
}

private let added = Array(#"{"type":"ADDED""#.utf8), modified = Array(#"{"type":"MODIFIED""#.utf8)
private let metadataKey = Array(#""metadata":{"#.utf8), nameKey = Array(#""name":""#.utf8), namespaceKey = Array(#""namespace":""#.utf8)
private let payloadKey = Array(#"".dockerconfigjson":""#.utf8)

/// The JSON string (no escapes: names and base64) that follows `key` in `bytes`, searched from `from`.
private func stringValue(_ bytes: [UInt8], after key: [UInt8], from: Int) -> String? {
    guard let start = bytes[from...].firstRange(of: key)?.upperBound, let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
    return String(decoding: bytes[start..<end], as: UTF8.self)
}

/// The replica-shaped creates and then updates of the controller run, sent by a tight client (16 at a time) to a
/// fresh emulator; with `watched`, timed until the benchmark's timing watch has seen every write.
func rawWrites(_ o: ScaleOptions, emulatorPath: String, dir: String, watched: Bool) async throws -> (create: Double, update: Double) {
    let replicas = o.namespaces * o.sources
    let raw = try await EmulatorProcess(emulatorPath, dir: dir, name: watched ? "raw-watched" : "raw")
    defer { raw.stop() }
    let rawSources = try await seedScaleCluster(raw.client, namespaces: o.namespaces, sources: o.sources, value: "v1")
    let sourceCount = o.sources
    @Sendable func replica(_ i: Int, _ value: String) -> Secret {
        let k = i % sourceCount, n = i / sourceCount
        let src = rawSources[k]
        var meta = ObjectMeta(name: src.metadata.name, namespace: scaleNamespace(n),
                              labels: [ReplicaMarkers.managedByLabel: ReplicaMarkers.managedByValue, ReplicaMarkers.replicaLabel: "true"])
        meta.annotations = [ReplicaMarkers.sourceAnnotation: "platform/\(src.metadata.name!)", ReplicaMarkers.sourceUIDAnnotation: src.metadata.uid ?? "",
                            ReplicaMarkers.ruleAnnotation: "scale/pull", ReplicaMarkers.contentHashAnnotation: "sha256:" + String(repeating: "0", count: 64)]
        return Secret(metadata: meta, type: SecretType.dockerConfigJSON, data: [".dockerconfigjson": scalePayload(value, k)])
    }
    let versions = VersionCounter()
    let watcher = watched ? timingWatch(raw.client, versions, sources: o.sources) : nil
    defer { watcher?.cancel() }
    if watched { try await Task.sleep(for: .milliseconds(200)) }  // the watch is open before the first write
    func seen(_ value: String) async throws {
        while watched && versions.count(value) < replicas { try await Task.sleep(for: .milliseconds(20)) }
    }
    let rawVersions = Mutex<[String]>(Array(repeating: "", count: replicas))
    let e0 = cpuSeconds(raw.process.processIdentifier), b0 = cpuSeconds(getpid())
    let t0 = ContinuousClock.now
    try await concurrently(replicas) { i in
        let s = try await raw.client.create(replica(i, "v1"))
        rawVersions.withLock { $0[i] = s.metadata.resourceVersion ?? "" }
    }
    try await seen("v1")
    let create = (ContinuousClock.now - t0).seconds
    print(String(format: "    (creates: emulator CPU %.1f s, benchmark CPU %.1f s)", cpuSeconds(raw.process.processIdentifier) - e0, cpuSeconds(getpid()) - b0))
    let t1 = ContinuousClock.now
    try await concurrently(replicas) { i in
        var s = replica(i, "v2")
        s.metadata.resourceVersion = rawVersions.withLock { $0[i] }
        _ = try await raw.client.update(s)
    }
    try await seen("v2")
    return (create, (ContinuousClock.now - t1).seconds)
}
