// `dynsecret-bench replicate-cluster`: `dynsecret replicate --once` (whole process, release build) copying 1 source
// Secret into 2,000 namespaces of an in-process KubeEmulator: a first pass (2,000 creates), a pass with nothing to do
// (0 writes), and a pass after the source changed (2,000 updates). Writes and requests are counted by the emulator.
//
//   swift build -c release --product dynsecret && swift build -c release --product dynsecret-bench
//   .build/release/dynsecret-bench replicate-cluster [--runs 3] [--dynsecret PATH]

import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator

func benchReplicateCluster(_ o: Options, namespaces: Int, concurrency: Int = 8) async throws {
    guard let dynsecret = resolve(o.dynsecret) else { throw EmulatorError("dynsecret not found: \(o.dynsecret) (build it in release mode first)") }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-replicate-cluster-bench-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let policy = dir + "/policy.yaml"
    try Data(teamPolicyYAML.utf8).write(to: URL(fileURLWithPath: policy))

    struct Pass { var seconds: Double; var writes: Int; var requests: Int }
    var passes: [[Pass]] = [[], [], []]
    let needed = [namespaces, 0, namespaces]
    var rss: Int?
    for run in 0..<o.runs {
        let kubeconfig = dir + "/kubeconfig-\(run)"
        let (emulator, admin, created) = try await startTeamCluster(namespaces: namespaces, kubeconfig: kubeconfig, value: "bench-v1-0123456789abcdef")
        var source = created
        for pass in 0..<3 {
            if pass == 2 {
                source.data = ["token": Array("bench-v2-fedcba9876543210".utf8)]
                source = try await admin.update(source)
            }
            emulator.resetCounters()
            let clock = ContinuousClock()
            let start = clock.now
            let code = try await runToEnd(dynsecret, ["replicate", "--policy", policy, "--once", "--kubeconfig", kubeconfig,
                                                      "--concurrency", String(concurrency)], home: dir)
            let seconds = (clock.now - start).seconds
            guard code == 0 else { throw EmulatorError("dynsecret replicate --once exited \(code) (pass \(pass + 1))") }
            let c = emulator.counters()
            let writes = ["create", "update", "patch", "delete"].reduce(0) { $0 + c[$1, default: 0] }
            let requests = ["get", "list", "create", "update", "patch", "delete"].reduce(0) { $0 + c[$1, default: 0] }
            passes[pass].append(Pass(seconds: seconds, writes: writes, requests: requests))
        }
        if run == o.runs - 1, let kib = peakRSS(dynsecret, ["replicate", "--policy", policy, "--once", "--kubeconfig", kubeconfig], stdin: nil) {
            rss = kib
        }
        let replicas = try await admin.listAll(.secrets, options: ListOptions(labelSelector: "dynsecret.io/replica=true")).items.count
        guard replicas == namespaces else { throw EmulatorError("\(replicas) replicas, expected \(namespaces)") }
        await emulator.stop()
    }
    print("benchmark: replicate-cluster (dynsecret replicate --once, 1 source -> \(namespaces) namespaces, kube-emulator, \(o.runs) runs, --concurrency \(concurrency), release)")
    for (i, name) in ["first (creates)", "in sync", "source changed (updates)"].enumerated() {
        let med = percentile(passes[i].map(\.seconds), 0.5)
        let writes = passes[i].last?.writes ?? 0
        let requests = passes[i].last?.requests ?? 0
        let ratio = needed[i] == 0 ? (writes == 0 ? "0 / 0" : "\(writes) / 0") : String(format: "%d / %d = %.2f", writes, needed[i], Double(writes) / Double(needed[i]))
        let label = name.padding(toLength: 26, withPad: " ", startingAt: 0)
        print("  pass \(label)" + String(format: " median %.3f s  API requests %d  requests/s %.0f  writes/needed ", med, requests, Double(requests) / med) + ratio)
    }
    print("  peak RSS of an in-sync pass: \(rss.map { "\($0) KiB" } ?? "n/a")")
}

/// The policy both cluster benchmarks use: `platform/pull` copied to every `team-*` namespace.
let teamPolicyYAML = """
    apiVersion: dynsecret.io/v1alpha1
    kind: ReplicationPolicy
    metadata: {name: bench}
    spec:
      rules:
      - name: pull
        source: {namespace: platform, name: pull}
        targets: {namespacePatterns: ["team-*"]}
    """

/// An in-process emulator (its kubeconfig written to `kubeconfig`) holding `platform/pull` with `value` under key
/// `token`, and `namespaces` namespaces `team-NNNN` (created 16 at a time).
func startTeamCluster(namespaces: Int, kubeconfig: String, value: String) async throws -> (KubeEmulator, KubeClient, Secret) {
    let emulator = try await KubeEmulator.start(EmulatorOptions())
    try Data(emulator.kubeconfig().utf8).write(to: URL(fileURLWithPath: kubeconfig))
    let admin = KubeClient(config: KubeConfig(server: emulator.url), maxConcurrentRequests: 16)
    func ns(_ name: String) -> JSONValue {
        .object(JSONObject([("apiVersion", .string("v1")), ("kind", .string("Namespace")), ("metadata", .object(JSONObject([("name", .string(name))])))]))
    }
    _ = try await admin.create(.namespaces, ns("platform"))
    let source = try await admin.create(Secret(metadata: ObjectMeta(name: "pull", namespace: "platform"), data: ["token": Array(value.utf8)]))
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<16 {
            group.addTask {
                for i in stride(from: w, to: namespaces, by: 16) { _ = try await admin.create(.namespaces, ns(String(format: "team-%04d", i))) }
            }
        }
        try await group.waitForAll()
    }
    return (emulator, admin, source)
}
