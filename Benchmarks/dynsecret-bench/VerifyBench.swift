// `dynsecret-bench verify`: `dynsecret verify` of one pull secret against a local registry with htpasswd Basic auth,
// against one `curl` process making the same two requests (GET /v2/ for the challenge, then GET /v2/ with the
// credentials), alternating in the same run.
//
//   swift build -c release --product dynsecret && swift build -c release --product dynsecret-bench
//   .build/release/dynsecret-bench verify [--runs 50] [--dynsecret PATH]
//
// Needs docker-registry, htpasswd (apache2-utils) and curl.

import DynSecretCore
import Foundation

func benchVerify(_ o: Options) throws {
    guard let dynsecret = resolve(o.dynsecret) else {
        print("dynsecret binary not found at \(o.dynsecret); build it with: swift build -c release --product dynsecret")
        exit(2)
    }
    guard let registry = resolve("docker-registry"), let htpasswd = resolve("htpasswd"), let curl = resolve("curl") else {
        print("needs docker-registry, htpasswd and curl: apt-get install docker-registry apache2-utils curl")
        exit(2)
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-verify-bench-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let password = "bench-\(UUID().uuidString)"
    _ = try timed(htpasswd, ["-c", "-B", "-i", dir + "/htpasswd", "alice"], stdin: password)

    var server: Process?
    var port = 0
    for _ in 0..<20 where server == nil {
        port = Int.random(in: 20000..<60000)
        let config = """
            version: 0.1
            log:
              level: error
              accesslog:
                disabled: true
            storage:
              filesystem:
                rootdirectory: \(dir)/storage
            http:
              addr: 127.0.0.1:\(port)
              secret: bench
            auth:
              htpasswd:
                realm: bench
                path: \(dir)/htpasswd

            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: "\(dir)/registry.yml"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: registry)
        p.arguments = ["serve", "\(dir)/registry.yml"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        for _ in 0..<100 where p.isRunning {
            if (try? timed(curl, ["-s", "-o", "/dev/null", "http://127.0.0.1:\(port)/v2/"], stdin: nil)) != nil {
                server = p
                break
            }
            usleep(50_000)
        }
        if server == nil { kill(p.processIdentifier, SIGKILL) }
    }
    guard let server else {
        print("docker-registry did not start")
        exit(1)
    }
    defer {
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
    }

    // An explicit http:// key, so dynsecret makes exactly curl's two requests (no HTTPS attempt first).
    let base = "http://127.0.0.1:\(port)"
    var config = DockerConfigJSON()
    config.set(RegistryCredential(username: "alice", password: password), for: base)
    let secretFile = dir + "/regcred.json"
    try Data(config.secret(name: "regcred", namespace: "bench").jsonText).write(to: URL(fileURLWithPath: secretFile))
    let ours = ["verify", "-f", secretFile]
    let peer = ["-s", "-o", "/dev/null", "\(base)/v2/", "--next", "-s", "-f", "-o", "/dev/null", "-u", "alice:\(password)", "\(base)/v2/"]

    for _ in 0..<5 {
        _ = try timed(dynsecret, ours, stdin: nil)
        _ = try timed(curl, peer, stdin: nil)
    }
    let (a, b) = try alternate(runs: o.runs, { try timed(dynsecret, ours, stdin: nil) }, { try timed(curl, peer, stdin: nil) })
    let rssA = (0..<5).compactMap { _ in peakRSS(dynsecret, ours, stdin: nil) }
    let rssB = (0..<5).compactMap { _ in peakRSS(curl, peer, stdin: nil) }
    let medA = percentile(a, 0.5)
    let medB = percentile(b, 0.5)
    print("benchmark: verify, one registry with htpasswd Basic auth (whole process, \(o.runs) alternating runs each)")
    print("  dynsecret verify  median \(ms(medA))  p90 \(ms(percentile(a, 0.9)))  peak RSS \(rssA.isEmpty ? "n/a" : "\(medianInt(rssA)) KiB")")
    print("  curl (2 requests) median \(ms(medB))  p90 \(ms(percentile(b, 0.9)))  peak RSS \(rssB.isEmpty ? "n/a" : "\(medianInt(rssB)) KiB")")
    print(String(format: "  ratio dynsecret/curl (median wall time): %.3f", medA / medB))

    // The peer the issue names: `skopeo login` to the same registry (Debian's skopeo; skipped when absent). It
    // checks the credentials with the same /v2/ exchange and writes them to an auth file of its own.
    guard let skopeo = resolve("skopeo") else {
        print("  skopeo not found: skipping dynsecret vs skopeo login (apt-get install skopeo)")
        return
    }
    let login = ["login", "--tls-verify=false", "--authfile", dir + "/skopeo-auth.json", "-u", "alice", "--password-stdin", "127.0.0.1:\(port)"]
    for _ in 0..<5 { _ = try timed(skopeo, login, stdin: password + "\n") }
    let (c, d) = try alternate(runs: o.runs, { try timed(dynsecret, ours, stdin: nil) }, { try timed(skopeo, login, stdin: password + "\n") })
    let medC = percentile(c, 0.5), medD = percentile(d, 0.5)
    print("  dynsecret verify  median \(ms(medC))  p90 \(ms(percentile(c, 0.9)))  (same run as skopeo)")
    print("  skopeo login      median \(ms(medD))  p90 \(ms(percentile(d, 0.9)))")
    print(String(format: "  ratio dynsecret/skopeo login (median wall time): %.3f", medC / medD))
}
