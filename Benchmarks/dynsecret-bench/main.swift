// dynsecret-bench: whole-process benchmarks of dynsecret against the peer tool named in each issue,
// measured in the same run with alternating invocations. Build and run in release mode:
//
//   swift build -c release --product dynsecret && swift build -c release --product dynsecret-bench
//   .build/release/dynsecret-bench create-registry [--runs 200] [--dynsecret PATH] [--kubectl PATH]
//
// Output: median and p90 wall time of each side, the ratio dynsecret/peer, and peak RSS (from /usr/bin/time).

import Foundation

struct Options {
    var runs = 200
    var dynsecret = ".build/release/dynsecret"
    var kubectl = "kubectl"
}

func parseOptions(_ args: ArraySlice<String>) -> Options {
    var o = Options()
    var it = args.makeIterator()
    while let a = it.next() {
        switch a {
        case "--runs": o.runs = Int(it.next() ?? "") ?? o.runs
        case "--dynsecret": o.dynsecret = it.next() ?? o.dynsecret
        case "--kubectl": o.kubectl = it.next() ?? o.kubectl
        default:
            FileHandle.standardError.write(Data("unknown option \(a)\n".utf8))
            exit(2)
        }
    }
    return o
}

/// Finds `name` on PATH unless it is already a path.
func resolve(_ name: String) -> String? {
    if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

/// Runs a command to completion (stdout discarded) and returns the wall time in seconds.
func timed(_ path: String, _ args: [String], stdin: String?) throws -> Double {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    let pipe = Pipe()
    p.standardInput = stdin == nil ? FileHandle.nullDevice : pipe
    // waitUntilExit polls a run loop in 50 ms steps on Linux; a termination handler reports the exit promptly.
    let done = DispatchSemaphore(value: 0)
    p.terminationHandler = { _ in done.signal() }
    let clock = ContinuousClock()
    let start = clock.now
    try p.run()
    if let stdin {
        pipe.fileHandleForWriting.write(Data(stdin.utf8))
        try pipe.fileHandleForWriting.close()
    }
    done.wait()
    let elapsed = clock.now - start
    guard p.terminationStatus == 0 else {
        throw NSError(domain: "bench", code: Int(p.terminationStatus), userInfo: [NSLocalizedDescriptionKey: "\(path) exited \(p.terminationStatus)"])
    }
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// Peak resident set size in KiB of one run, measured by GNU time.
func peakRSS(_ path: String, _ args: [String], stdin: String?) -> Int? {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/time") else { return nil }
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("bench-rss-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: out) }
    _ = try? timed("/usr/bin/time", ["-f", "%M", "-o", out.path, path] + args, stdin: stdin)
    guard let text = try? String(contentsOf: out, encoding: .utf8) else { return nil }
    return Int(text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last ?? "")
}

/// Runs two measurements `runs` times each, alternating which goes first so drift and caching favour neither.
func alternate(runs: Int, _ a: () throws -> Double, _ b: () throws -> Double) rethrows -> ([Double], [Double]) {
    var xs: [Double] = []
    var ys: [Double] = []
    for i in 0..<runs {
        if i % 2 == 0 {
            xs.append(try a())
            ys.append(try b())
        } else {
            ys.append(try b())
            xs.append(try a())
        }
    }
    return (xs, ys)
}

func percentile(_ xs: [Double], _ q: Double) -> Double {
    let s = xs.sorted()
    let i = min(s.count - 1, max(0, Int((Double(s.count - 1) * q).rounded())))
    return s[i]
}

func medianInt(_ xs: [Int]) -> Int { xs.sorted()[xs.count / 2] }

func ms(_ s: Double) -> String { String(format: "%.2f ms", s * 1000) }

func benchCreateRegistry(_ o: Options) throws {
    guard let dynsecret = resolve(o.dynsecret) else {
        print("dynsecret binary not found at \(o.dynsecret); build it with: swift build -c release --product dynsecret")
        exit(2)
    }
    guard let kubectl = resolve(o.kubectl) else {
        print("kubectl not found: the peer of this benchmark is 'kubectl create secret docker-registry --dry-run=client -o json'")
        exit(2)
    }
    let password = "bench-password-\(UUID().uuidString)"
    let ours = ["create-registry", "regcred", "-n", "team-a", "--server", "registry.example.com:5000",
                "--username", "alice", "--email", "alice@example.com", "--password-stdin", "-o", "json"]
    let peer = ["create", "secret", "docker-registry", "regcred", "-n", "team-a", "--docker-server=registry.example.com:5000",
                "--docker-username=alice", "--docker-email=alice@example.com", "--docker-password=\(password)",
                "--dry-run=client", "-o", "json"]

    // Warm-up: page cache and dynamic loader for both binaries.
    for _ in 0..<5 {
        _ = try timed(dynsecret, ours, stdin: password)
        _ = try timed(kubectl, peer, stdin: nil)
    }
    let (a, b) = try alternate(runs: o.runs, { try timed(dynsecret, ours, stdin: password) }, { try timed(kubectl, peer, stdin: nil) })
    let rssA = (0..<5).compactMap { _ in peakRSS(dynsecret, ours, stdin: password) }
    let rssB = (0..<5).compactMap { _ in peakRSS(kubectl, peer, stdin: nil) }

    let medA = percentile(a, 0.5)
    let medB = percentile(b, 0.5)
    print("benchmark: create-registry (whole process, \(o.runs) alternating runs each)")
    print("  dynsecret  median \(ms(medA))  p90 \(ms(percentile(a, 0.9)))  peak RSS \(rssA.isEmpty ? "n/a" : "\(medianInt(rssA)) KiB")")
    print("  kubectl    median \(ms(medB))  p90 \(ms(percentile(b, 0.9)))  peak RSS \(rssB.isEmpty ? "n/a" : "\(medianInt(rssB)) KiB")")
    print(String(format: "  ratio dynsecret/kubectl (median wall time): %.3f  (goal: <= 0.5)", medA / medB))
}

let args = CommandLine.arguments.dropFirst()
switch args.first {
case "create-registry":
    try benchCreateRegistry(parseOptions(args.dropFirst()))
case "index":
    var o = parseOptions(args.dropFirst())
    if o.runs == Options().runs { o.runs = 5 }
    try benchIndex(o, count: 100_000)
case "validate":
    var o = parseOptions(args.dropFirst())
    if o.runs == Options().runs { o.runs = 3 }
    try benchValidate(o, count: 10_000)
case "crypto":
    try benchCrypto(args.dropFirst())
case "replicate":
    var o = parseOptions(args.dropFirst())
    if o.runs == Options().runs { o.runs = 10 }
    try await benchReplicate(o, namespaces: 2_000)
case "kube":
    benchKube(args.dropFirst())
case "verify":
    var o = parseOptions(args.dropFirst())
    if o.runs == Options().runs { o.runs = 50 }
    try benchVerify(o)
case "replicate-cluster":
    var o = parseOptions(args.dropFirst())
    if o.runs == Options().runs { o.runs = 3 }
    try await benchReplicateCluster(o, namespaces: 2_000)
case "controller":
    var o = parseOptions(args.dropFirst())
    if o.runs == Options().runs { o.runs = 3 }
    try await benchController(o, namespaces: 2_000)
case "scale":
    try await benchScale(parseScaleOptions(args.dropFirst()))
case "fleet":
    try await benchFleet(args.dropFirst())
case "ecr":
    var o = parseOptions(args.dropFirst())
    if o.runs == Options().runs { o.runs = 20 }
    try benchECR(o)
case "mint-refresh":
    try await benchMintRefresh(args.dropFirst())
default:
    print("usage: dynsecret-bench create-registry|index|validate|crypto|replicate|kube|replicate-cluster|controller|scale|fleet|ecr|mint-refresh|verify [options]")
    exit(args.isEmpty ? 0 : 2)
}
