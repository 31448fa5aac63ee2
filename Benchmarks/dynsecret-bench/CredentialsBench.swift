// `dynsecret-bench ecr`: one ECR mint against moto's server mode (signature and IAM checks on), whole process:
// `dynsecret create-registry --from-ecr` against boto3's `get_authorization_token` (the awscli of this machine does not
// start), alternating, the same credentials and endpoint.
// `dynsecret-bench mint-refresh`: the controller keeping 2,000 replicas of a minted credential current: a kubelet
// credential provider plugin answers a new token every `--lifetime` seconds; measured is the time from the plugin's
// answer (refresh at half the lifetime) to the last replica carrying the new token, and writes per replica.
//
//   swift build -c release --static-swift-stdlib --product dynsecret && swift build -c release --product dynsecret-bench
//   .build/release/dynsecret-bench ecr [--runs 20]
//   .build/release/dynsecret-bench mint-refresh [--namespaces 2000] [--lifetime 20]

import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator

/// moto_peer.py (the tests' moto launcher), started from the repository root.
func startMoto() throws -> (process: Process, input: Pipe, endpoint: String, keys: [String]) {
    let script = "Tests/DynSecretKubeTests/Peers/moto_peer.py"
    guard FileManager.default.fileExists(atPath: script) else { throw EmulatorError("run from the repository root (\(script) not found)") }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", script]
    let out = Pipe(), input = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    p.standardInput = input
    try p.run()
    var line: [UInt8] = []
    while let c = try out.fileHandleForReading.read(upToCount: 1), let b = c.first, b != 0x0A { line.append(b) }
    let v = try JSONParser.parse(line)
    guard case .number(let port)? = v["port"], let keys = v["minter"]?.arrayValue?.compactMap(\.stringValue) else {
        throw EmulatorError("moto did not start (pip install 'moto[server]')")
    }
    return (p, input, "http://127.0.0.1:\(port)", keys)
}

func benchECR(_ o: Options) throws {
    guard let dynsecret = resolve(o.dynsecret) else { throw EmulatorError("dynsecret not found: \(o.dynsecret) (build it in release mode first)") }
    let moto = try startMoto()
    defer {
        try? moto.input.fileHandleForWriting.close()
        moto.process.waitUntilExit()
    }
    // Both sides read the same environment: the minter's keys, moto as the ECR endpoint, no IMDS.
    setenv("AWS_ACCESS_KEY_ID", moto.keys[0], 1)
    setenv("AWS_SECRET_ACCESS_KEY", moto.keys[1], 1)
    setenv("AWS_ENDPOINT_URL_ECR", moto.endpoint, 1)
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1)
    setenv("AWS_DEFAULT_REGION", "us-east-1", 1)
    let ours = ["create-registry", "ecr-pull", "--from-ecr", "--region", "us-east-1", "-o", "json"]
    let python = resolve("python3") ?? "/usr/bin/python3"
    let peer = ["-c", "import boto3; boto3.client('ecr', region_name='us-east-1').get_authorization_token()"]
    for _ in 0..<3 {
        _ = try timed(dynsecret, ours, stdin: nil)
        _ = try timed(python, peer, stdin: nil)
    }
    let (a, b) = try alternate(runs: o.runs, { try timed(dynsecret, ours, stdin: nil) }, { try timed(python, peer, stdin: nil) })
    let rssA = (0..<3).compactMap { _ in peakRSS(dynsecret, ours, stdin: nil) }
    let rssB = (0..<3).compactMap { _ in peakRSS(python, peer, stdin: nil) }
    print("benchmark: ecr (one GetAuthorizationToken against moto with SigV4 and IAM checks, whole process, \(o.runs) alternating runs each)")
    print("  dynsecret create-registry --from-ecr  median \(ms(percentile(a, 0.5)))  p90 \(ms(percentile(a, 0.9)))  peak RSS \(rssA.isEmpty ? "n/a" : "\(medianInt(rssA)) KiB")")
    print("  boto3 get_authorization_token        median \(ms(percentile(b, 0.5)))  p90 \(ms(percentile(b, 0.9)))  peak RSS \(rssB.isEmpty ? "n/a" : "\(medianInt(rssB)) KiB")")
    print(String(format: "  ratio dynsecret/boto3 (median wall time): %.3f  (goal: <= 0.5)", percentile(a, 0.5) / percentile(b, 0.5)))
}

func benchMintRefresh(_ args: ArraySlice<String>) async throws {
    var namespaces = 2_000, lifetime = 20, dynsecretPath = ".build/release/dynsecret"
    var it = args.makeIterator()
    while let a = it.next() {
        switch a {
        case "--namespaces": namespaces = Int(it.next() ?? "") ?? namespaces
        case "--lifetime": lifetime = Int(it.next() ?? "") ?? lifetime
        case "--dynsecret": dynsecretPath = it.next() ?? dynsecretPath
        default: throw EmulatorError("unknown option \(a)")
        }
    }
    guard let dynsecret = resolve(dynsecretPath) else { throw EmulatorError("dynsecret not found: \(dynsecretPath)") }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-mint-bench-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // The plugin: token N on its Nth run, the wall time of each answer appended to mints.log.
    let plugin = dir + "/provider"
    try Data("""
        #!/usr/bin/env python3
        import json, os, sys, time
        req = json.load(sys.stdin)
        path = "\(dir)/mints.log"
        n = (sum(1 for _ in open(path)) if os.path.exists(path) else 0) + 1
        with open(path, "a") as f:
            f.write("%d %.6f\\n" % (n, time.time()))
        print(json.dumps({"kind": "CredentialProviderResponse", "apiVersion": req["apiVersion"], "cacheKeyType": "Registry",
                          "cacheDuration": "\(lifetime)s", "auth": {"bench.azurecr.io": {"username": "u", "password": "token-%d" % n}}}))
        """.utf8).write(to: URL(fileURLWithPath: plugin))
    chmod(plugin, 0o755)
    let policy = dir + "/policy.yaml"
    try Data("""
        apiVersion: dynsecret.io/v1alpha1
        kind: ReplicationPolicy
        metadata: {name: minted}
        spec:
          credentials:
          - name: acr
            exec: {command: "\(plugin)", image: "bench.azurecr.io/app:1"}
          rules:
          - name: pull
            source: {credentials: [acr]}
            targetName: acr-pull
            targets: {namespacePatterns: ["team-*"]}
        """.utf8).write(to: URL(fileURLWithPath: policy))
    let kubeconfig = dir + "/kubeconfig"
    let (emulator, admin, _) = try await startTeamCluster(namespaces: namespaces, kubeconfig: kubeconfig, value: "unused")
    let times = ReplicaTimes()
    let watcher = Task {
        var opts = ListOptions(labelSelector: "dynsecret.io/replica=true")
        opts.resourceVersion = String(emulator.resourceVersion)
        opts.timeoutSeconds = 600
        for try await event in admin.watch(.secrets, options: opts) where event.type == "ADDED" || event.type == "MODIFIED" {
            let m = event.object["metadata"]
            let key = (m?["namespace"]?.stringValue ?? "") + "/" + (m?["name"]?.stringValue ?? "")
            let secret = try? Secret(kubeJSON: event.object)
            let password = secret.flatMap { try? PullSecret.entries(of: $0) }??.first?.credential.password ?? ""
            times.record(key, password)
        }
    }
    defer { watcher.cancel() }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: dynsecret)
    p.arguments = ["controller", "--policy", policy, "--kubeconfig", kubeconfig, "--health-addr", "off", "--metrics-addr", "off", "--log-level", "warning"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    let started = ContinuousClock.now
    try p.run()
    defer {
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
    }
    func wait(for token: String) async throws {
        while times.count(token) < namespaces {
            try await Task.sleep(for: .milliseconds(5))
            if ContinuousClock.now - started > .seconds(600) { throw EmulatorError("\(token) did not reach every replica") }
        }
    }
    try await wait(for: "token-1")
    let converge = (ContinuousClock.now - started).seconds
    func writes() -> Int { ["create", "patch", "update"].reduce(0) { $0 + emulator.counters()["\($1) secrets", default: 0] } }
    var refreshes: [(latency: Double, writes: Int)] = []
    for n in 2...4 {
        let before = writes()
        try await wait(for: "token-\(n)")
        // The plugin's answer for token n, in wall-clock time, against the wall-clock time of the last copy.
        let lastCopy = Date().timeIntervalSince1970 - (ContinuousClock.now - (times.times("token-\(n)").max() ?? .now)).seconds
        let mints = try String(contentsOfFile: dir + "/mints.log", encoding: .utf8).split(separator: "\n")
        guard let minted = mints.first(where: { $0.hasPrefix("\(n) ") }).flatMap({ Double($0.split(separator: " ")[1]) }) else { throw EmulatorError("no mint \(n)") }
        try await Task.sleep(for: .milliseconds(500))
        refreshes.append((lastCopy - minted, writes() - before))
    }
    print("benchmark: mint-refresh (dynsecret controller, 1 minted credential -> \(namespaces) namespaces, \(lifetime) s lifetimes refreshed at half, kube-emulator, release)")
    print(String(format: "  initial convergence %.3f s", converge))
    for (i, r) in refreshes.enumerated() {
        print(String(format: "  refresh %d: plugin answer -> last of %d copies updated %.0f ms; writes %d / %d = %.2f",
                     i + 1, namespaces, r.latency * 1000, r.writes, namespaces, Double(r.writes) / Double(namespaces)))
    }
    await emulator.stop()
}
