import DynSecretCore
import Foundation

/// `dynsecret-bench replicate`: the 2,000-namespace replication scenario without a cluster.
///
/// In-process: plan → apply to the in-memory cluster → plan again → change the source → plan and apply; reports the
/// planning time of each pass and writes ÷ needed writes (goal 1.00). Whole-process: median wall time of
/// `dynsecret replicate --dry-run -o json` over the same state as manifests. No peer tool plans replication offline,
/// so there is no ratio; the emulator benchmark (requests per second) comes with the Kubernetes client.
func benchReplicate(_ o: Options, namespaces count: Int) async throws {
    var namespaces = [ReplicationNamespace(name: "platform")]
    for i in 0..<count { namespaces.append(ReplicationNamespace(name: "team-\(i)", labels: ["pull": "yes"])) }
    namespaces.append(ReplicationNamespace(name: "tenant", labels: ["pull": "yes"]))
    var sourceMeta = ObjectMeta(name: "regcred", namespace: "platform")
    sourceMeta.uid = "source-uid"
    let source = Secret(metadata: sourceMeta, type: SecretType.dockerConfigJSON, data: [".dockerconfigjson": Array(#"{"auths":{"nvcr.io":{"auth":"dXNlcjpwYXNz"}}}"#.utf8)])
    var foreignMeta = ObjectMeta(name: "regcred", namespace: "tenant")
    foreignMeta.uid = "foreign-uid"
    let foreign = Secret(metadata: foreignMeta, type: SecretType.dockerConfigJSON, data: [".dockerconfigjson": Array("{}".utf8)])
    let policy = ReplicationPolicy(name: "bench", rules: [ReplicationRule(
        name: "pull", source: .init(namespace: "platform", name: "regcred"),
        targets: .init(namespaceSelector: LabelSelector(matchLabels: ["pull": "yes"]))
    )])

    func time<T>(_ body: () -> T) -> (T, Double) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = body()
        return (r, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    var cluster = InMemoryReplicationCluster(ReplicationState(namespaces: namespaces, secrets: [source, foreign]))
    let (first, t1) = time { ReplicationPlanner.plan(policy, cluster.state) }
    _ = await ReplicationApplier.apply(first, to: &cluster)
    let (second, t2) = time { ReplicationPlanner.plan(policy, cluster.state) }
    let i = cluster.state.secrets.firstIndex { $0.metadata.namespace == "platform" }!
    cluster.state.secrets[i].data[".dockerconfigjson"] = Array(#"{"auths":{"nvcr.io":{"auth":"bmV3OnBhc3M="}}}"#.utf8)
    let (third, t3) = time { ReplicationPlanner.plan(policy, cluster.state) }
    _ = await ReplicationApplier.apply(third, to: &cluster)
    let untouched = cluster.state.secrets.first { $0.metadata.namespace == "tenant" } == foreign
    print("replicate: 1 source -> \(count) namespaces (+1 with a same-name foreign Secret), in-process planner")
    print(String(format: "  first pass:  plan %@, writes %d / needed %d = %.2f", ms(t1), first.writes.count, count, Double(first.writes.count) / Double(count)))
    print(String(format: "  second pass: plan %@, writes %d / needed 0", ms(t2), second.writes.count))
    print(String(format: "  source changed: plan %@, writes %d / needed %d = %.2f", ms(t3), third.writes.count, count, Double(third.writes.count) / Double(count)))
    print("  emulator-style write counts: \(cluster.writeCounts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")), foreign Secret untouched: \(untouched)")

    // Whole process over manifests.
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-bench-replicate-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    var state = ""
    for ns in namespaces {
        state += "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: \(ns.name)\n"
        if !ns.labels.isEmpty { state += "  labels: {pull: \"yes\"}\n" }
    }
    for s in [source, foreign] { state += "---\n" + s.yamlText }
    try state.write(to: dir.appendingPathComponent("state.yaml"), atomically: true, encoding: .utf8)
    let policyText = """
        apiVersion: dynsecret.io/v1alpha1
        kind: ReplicationPolicy
        metadata: {name: bench}
        spec:
          rules:
          - name: pull
            source: {namespace: platform, name: regcred}
            targets: {namespaceSelector: {matchLabels: {pull: "yes"}}}
        """
    let policyPath = dir.appendingPathComponent("policy.yaml").path
    try policyText.write(toFile: policyPath, atomically: true, encoding: .utf8)
    let args = ["replicate", "--policy", policyPath, "--from-manifests", dir.appendingPathComponent("state.yaml").path, "--dry-run", "-o", "json"]
    var times: [Double] = []
    for _ in 0..<o.runs { times.append(try timed(o.dynsecret, args, stdin: nil)) }
    let rss = peakRSS(o.dynsecret, args, stdin: nil)
    print("  whole process `dynsecret replicate --dry-run -o json` (\(o.runs) runs): median \(ms(percentile(times, 0.5))), p90 \(ms(percentile(times, 0.9)))"
        + (rss.map { String(format: ", peak RSS %.1f MiB", Double($0) / 1024) } ?? ""))
}
