import DynSecretCLI
import DynSecretCore
import DynSecretKube
import Foundation
import Synchronization
import Testing

/// Debian's `docker-registry` (the CNCF distribution registry 2.8); `.ci/run` installs it.
let dockerRegistryPath: String? = ["/usr/bin/docker-registry", "/usr/local/bin/docker-registry"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// Passwords that must never appear in any output.
private let canary = "CANARY-pw-7f3a9c"
private let bobPassword = "CANARY-bob-51e0"

/// Real registries on loopback: htpasswd (plain HTTP or TLS with a test CA) or token auth with the test's token
/// server, all on one storage directory into which the test pushes an image through the registry API.
final class RegistryLab: @unchecked Sendable {
    let dir: TempDir
    var storage: String { dir.url.appendingPathComponent("storage").path }
    private let processes = Mutex<[Int: Process]>([:])
    private let tokenServers = Mutex<[Process]>([])

    init() throws { dir = try TempDir() }

    deinit { stopAll() }

    func path(_ name: String) -> String { dir.url.appendingPathComponent(name).path }

    func stopAll() {
        for p in processes.withLock({ Array($0.values) }) + tokenServers.withLock({ $0 }) { Self.kill(p) }
        processes.withLock { $0 = [:] }
        tokenServers.withLock { $0 = [] }
    }

    func stop(port: Int) {
        guard let p = processes.withLock({ $0.removeValue(forKey: port) }) else { return }
        Self.kill(p)
    }

    /// Processes started by Foundation may not get SIGTERM: SIGKILL, then reap.
    static func kill(_ p: Process) {
        guard p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(p.processIdentifier, &status, 0)
    }

    /// An htpasswd file (bcrypt) with the users.
    func htpasswd(_ users: [(String, String)]) throws -> String {
        let file = path("htpasswd")
        for (i, (user, password)) in users.enumerated() {
            let r = try runProcess("/usr/bin/htpasswd", (i == 0 ? ["-c"] : []) + ["-B", "-i", file, user], stdin: password)
            #expect(r.code == 0, "htpasswd: \(r.stderr)")
        }
        return file
    }

    /// A test CA with a server certificate for 127.0.0.1 and localhost, and a second, unrelated CA.
    func makePKI() throws {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _ = try dir.file("ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        for ca in ["ca", "other-ca"] {
            let r = try runProcess("/usr/bin/openssl", ["req", "-x509"] + ec + ["-keyout", path("\(ca).key"), "-out", path("\(ca).crt"), "-subj", "/CN=\(ca) test", "-days", "2"])
            #expect(r.code == 0, "\(r.stderr)")
        }
        var r = try runProcess("/usr/bin/openssl", ["req"] + ec + ["-keyout", path("server.key"), "-out", path("server.csr"), "-subj", "/CN=127.0.0.1"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try runProcess("/usr/bin/openssl", ["x509", "-req", "-in", path("server.csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial",
                                                "-out", path("server.crt"), "-days", "2", "-extfile", path("ext.cnf")])
        #expect(r.code == 0, "\(r.stderr)")
        // The token signing certificate (RS256, x5c in the token header).
        r = try runProcess("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path("signing.key"), "-out", path("signing.crt"),
                                                "-subj", "/CN=token signer", "-days", "2"])
        #expect(r.code == 0, "\(r.stderr)")
    }

    enum Auth {
        case htpasswd(String)
        case token(realm: String)
    }

    /// Starts a registry on a free loopback port and returns the port once it accepts connections.
    func startRegistry(auth: Auth, tls: Bool = false) async throws -> Int {
        let registry = try #require(dockerRegistryPath)
        for _ in 0..<20 {
            let port = Int.random(in: 20000..<60000)
            var config = """
                version: 0.1
                log:
                  level: error
                  accesslog:
                    disabled: true
                storage:
                  filesystem:
                    rootdirectory: \(storage)
                  maintenance:
                    uploadpurging:
                      enabled: false
                http:
                  addr: 127.0.0.1:\(port)
                  secret: verify-test-secret

                """
            if tls { config += "  tls:\n    certificate: \(path("server.crt"))\n    key: \(path("server.key"))\n" }
            switch auth {
            case .htpasswd(let file): config += "auth:\n  htpasswd:\n    realm: test-realm\n    path: \(file)\n"
            case .token(let realm):
                config += "auth:\n  token:\n    realm: \(realm)\n    service: test-registry\n    issuer: verify-test-issuer\n    rootcertbundle: \(path("signing.crt"))\n"
            }
            let file = try dir.file("registry-\(port).yml", config)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: registry)
            p.arguments = ["serve", file]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            processes.withLock { $0[port] = p }
            for _ in 0..<100 {
                if !p.isRunning { break }
                let probe = try runProcess("/usr/bin/curl", ["-s", "-k", "-o", "/dev/null", "--max-time", "1", "\(tls ? "https" : "http")://127.0.0.1:\(port)/v2/"])
                if probe.code == 0 { return port }
                try await Task.sleep(for: .milliseconds(50))
            }
            stop(port: port)
        }
        throw CLIError("docker-registry did not start")
    }

    /// Starts the token server (`registry_token_server.py`) and returns its realm URL.
    func startTokenServer(users: String, delaySeconds: Double = 0) async throws -> String {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("registry_token_server.py").path
        let usersFile = try dir.file("users.json", users)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, usersFile, path("signing.key"), path("signing.crt"), "verify-test-issuer", String(delaySeconds)]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        tokenServers.withLock { $0.append(p) }
        // The first line is the port.
        var line: [UInt8] = []
        while true {
            let byte = try out.fileHandleForReading.read(upToCount: 1) ?? Data()
            guard let b = byte.first else { break }
            if b == 0x0A { break }
            line.append(b)
        }
        let port = try #require(Int(String(decoding: line, as: UTF8.self)), "the token server did not start")
        return "http://127.0.0.1:\(port)/token"
    }

    /// Pushes a one-layer image through the registry API with curl: two blob uploads (POST, then PUT with the
    /// digest) and a Docker schema 2 manifest.
    func push(port: Int, repository: String, tag: String, user: String, password: String) throws {
        let script = """
            set -euo pipefail
            base=http://127.0.0.1:\(port); repo=\(repository); tag=\(tag); cd "$1"
            auth="$(cat auth)"
            printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}' > config.json
            printf 'dynsecret verify test layer %s' "$repo" | gzip -c > layer.tar.gz
            upload() {
              digest="sha256:$(sha256sum "$1" | cut -d' ' -f1)"
              loc="$(curl -fsS -u "$auth" -X POST -D - -o /dev/null "$base/v2/$repo/blobs/uploads/" | tr -d '\\r' | awk 'tolower($1)=="location:"{print $2}')"
              case "$loc" in http*) ;; *) loc="$base$loc";; esac
              case "$loc" in *\\?*) sep='&';; *) sep='?';; esac
              curl -fsS -u "$auth" -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" "$loc${sep}digest=$digest" -o /dev/null
              echo "$digest"
            }
            cdigest="$(upload config.json)"; ldigest="$(upload layer.tar.gz)"
            csize=$(stat -c %s config.json); lsize=$(stat -c %s layer.tar.gz)
            printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%s,"digest":"%s"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%s,"digest":"%s"}]}' \\
              "$csize" "$cdigest" "$lsize" "$ldigest" > manifest.json
            curl -fsS -u "$auth" -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' --data-binary @manifest.json "$base/v2/$repo/manifests/$tag" -o /dev/null
            """
        let work = path("push-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        _ = try dir.file("\(URL(fileURLWithPath: work).lastPathComponent)/auth", "\(user):\(password)")
        let r = try runProcess("/bin/bash", ["-c", script, "push", work])
        #expect(r.code == 0, "push failed: \(r.stderr)")
    }
}

/// A pull secret manifest for the registries, one credential for all.
func pullSecretManifest(_ name: String, registries: [String], user: String, password: String, namespace: String = "team-a") -> String {
    var auths = JSONObject()
    for r in registries { auths[r] = RegistryCredential(username: user, password: password).entryJSON }
    let payload = GoJSONWriter.compact(.object(JSONObject([("auths", .object(auths))])))
    return "apiVersion: v1\nkind: Secret\nmetadata: {name: \(name), namespace: \(namespace)}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: \(Base64.encode(payload))\n"
}

/// Every output a test produced, checked for secrets at the end.
final class Outputs: Sendable {
    let all = Mutex<[String]>([])
    func record(_ r: RunResult) -> RunResult {
        all.withLock { $0.append(r.stdout + "\n" + r.stderr) }
        return r
    }
    func expectNoSecrets(_ secrets: [String]) {
        for text in all.withLock({ $0 }) {
            for s in secrets { #expect(!text.contains(s), "a secret value appeared in the output") }
            // A JWT's header (`{"typ": …` or `{"alg": …`) in base64url.
            #expect(!text.contains("eyJ0eXAi") && !text.contains("eyJhbGci"), "a token appeared in the output")
        }
    }
}

@Suite(.serialized, .heavy, .enabled(if: dockerRegistryPath != nil, "docker-registry is not installed (apt-get install docker-registry)"))
struct VerifyTests {
    let outputs = Outputs()

    func run(_ args: [String], stdin: String = "") async -> RunResult {
        outputs.record(await dynsecret(args, stdin: stdin))
    }

    func statuses(_ json: String) -> [String] {
        guard case .array(let results)? = (try? JSONParser.parse(json))?["results"] else { return [] }
        return results.compactMap { $0["status"]?.stringValue }
    }

    @Test func basicAuthOverPlainHTTP() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        let port = try await lab.startRegistry(auth: .htpasswd(try lab.htpasswd([("alice", canary)])))
        try lab.push(port: port, repository: "team/app", tag: "1.0", user: "alice", password: canary)
        let registry = "127.0.0.1:\(port)"
        let good = try lab.dir.file("good.yaml", pullSecretManifest("regcred", registries: [registry], user: "alice", password: canary))
        let bad = try lab.dir.file("bad.yaml", pullSecretManifest("regcred", registries: [registry], user: "alice", password: canary + "-wrong"))

        var r = await run(["verify", "-f", good])
        #expect(r.code == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("ok") && r.stdout.contains(registry))
        r = await run(["verify", "-f", good, "-o", "json"])
        #expect(r.code == 0 && statuses(r.stdout) == ["ok"])
        let first = try #require(try JSONParser.parse(r.stdout)["results"]?.arrayValue?.first)
        #expect(first["endpoint"]?.stringValue == "http://\(registry)", "loopback falls back to plain HTTP")
        #expect(first["username"]?.stringValue == "alice" && first["seconds"] != nil)

        r = await run(["verify", "-f", bad, "-o", "json"])
        #expect(r.code == 1 && statuses(r.stdout) == ["unauthorized"], "\(r.stdout)")
        #expect(r.stdout.contains("UNAUTHORIZED"), "the registry's error code is reported")

        // Images: present, missing tag, missing repository, by the credential the kubelet picks.
        r = await run(["verify", "-f", good, "-o", "json", "--image", "\(registry)/team/app:1.0", "--image", "\(registry)/team/app:2.0",
                       "--image", "\(registry)/team/none:1.0"])
        #expect(r.code == 1 && statuses(r.stdout) == ["ok", "not-found", "not-found"], "\(r.stdout)")
        #expect(r.stdout.contains("MANIFEST_UNKNOWN"))
        r = await run(["verify", "-f", good, "--image", "\(registry)/team/app:1.0"])
        #expect(r.code == 0 && r.stdout.contains("regcred [\(registry)]"), "\(r.stdout)")

        // --docker-config input.
        let config = try lab.dir.file("config.json", #"{"auths":{"\#(registry)":{"auth":"\#(RegistryCredential(username: "alice", password: canary).auth)"}}}"#)
        r = await run(["verify", "--docker-config", config])
        #expect(r.code == 0, "\(r.stdout)\(r.stderr)")

        // Stopped registry.
        lab.stop(port: port)
        r = await run(["verify", "-f", good, "-o", "json"])
        #expect(r.code == 1 && statuses(r.stdout) == ["unreachable"], "\(r.stdout)")
        outputs.expectNoSecrets([canary, RegistryCredential(username: "alice", password: canary).auth])
    }

    @Test func basicAuthOverTLS() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        try lab.makePKI()
        let port = try await lab.startRegistry(auth: .htpasswd(try lab.htpasswd([("alice", canary)])), tls: true)
        let good = try lab.dir.file("good.yaml", pullSecretManifest("regcred", registries: ["127.0.0.1:\(port)", "https://localhost:\(port)"], user: "alice", password: canary))

        var r = await run(["verify", "-f", good, "--registry-ca", lab.path("ca.crt"), "-o", "json"])
        #expect(r.code == 0 && statuses(r.stdout) == ["ok", "ok"], "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("\"endpoint\": \"https://127.0.0.1:\(port)\""))
        // No CA: the system trust does not know the test CA; a wrong CA neither. Neither falls back to plain HTTP.
        r = await run(["verify", "-f", good, "-o", "json"])
        #expect(r.code == 1 && statuses(r.stdout) == ["tls-error", "tls-error"], "\(r.stdout)")
        r = await run(["verify", "-f", good, "--registry-ca", lab.path("other-ca.crt"), "-o", "json"])
        #expect(r.code == 1 && statuses(r.stdout) == ["tls-error", "tls-error"], "\(r.stdout)")
        // --insecure-registry: unverified TLS for that host only.
        r = await run(["verify", "-f", good, "--insecure-registry", "127.0.0.1", "-o", "json"])
        #expect(r.code == 1 && statuses(r.stdout) == ["ok", "tls-error"], "\(r.stdout)")
        r = await run(["verify", "-f", good, "--insecure-registry", "127.0.0.1:\(port)", "--insecure-registry", "localhost", "-o", "json"])
        #expect(r.code == 0 && statuses(r.stdout) == ["ok", "ok"], "\(r.stdout)")
        // A file that is not a certificate is an input error.
        r = await run(["verify", "-f", good, "--registry-ca", good])
        #expect(r.code == 2 && r.stderr.contains("--registry-ca") && r.stdout.isEmpty)
        outputs.expectNoSecrets([canary])
    }

    @Test func tokenAuth() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        try lab.makePKI()
        let basic = try await lab.startRegistry(auth: .htpasswd(try lab.htpasswd([("alice", canary)])))
        try lab.push(port: basic, repository: "team/app", tag: "1.0", user: "alice", password: canary)
        let realm = try await lab.startTokenServer(users: #"{"alice":{"password":"\#(canary)","pull":["*"]},"bob":{"password":"\#(bobPassword)","pull":["other/repo"]}}"#)
        let port = try await lab.startRegistry(auth: .token(realm: realm))
        let registry = "127.0.0.1:\(port)"
        let alice = try lab.dir.file("alice.yaml", pullSecretManifest("alice", registries: [registry], user: "alice", password: canary))
        let bob = try lab.dir.file("bob.yaml", pullSecretManifest("bob", registries: [registry], user: "bob", password: bobPassword))
        let wrong = try lab.dir.file("wrong.yaml", pullSecretManifest("wrong", registries: [registry], user: "alice", password: bobPassword))
        let image = "\(registry)/team/app:1.0"

        var r = await run(["verify", "-f", alice, "-o", "json", "--image", image, "--image", "\(registry)/team/app:9.9"])
        #expect(r.code == 1 && statuses(r.stdout) == ["ok", "not-found"], "\(r.stdout)\(r.stderr)")
        r = await run(["verify", "-f", alice])
        #expect(r.code == 0, "\(r.stdout)")
        // bob logs in, but his token grants no pull on team/app: the registry answers 401 insufficient_scope.
        r = await run(["verify", "-f", bob, "-o", "json"])
        #expect(r.code == 0 && statuses(r.stdout) == ["ok"], "\(r.stdout)")
        r = await run(["verify", "-f", bob, "-o", "json", "--image", image])
        #expect(r.code == 1 && statuses(r.stdout) == ["denied"], "\(r.stdout)")
        r = await run(["verify", "-f", wrong, "-o", "json", "--image", image])
        #expect(r.code == 1 && statuses(r.stdout) == ["unauthorized"], "\(r.stdout)")
        // No key matches localhost:PORT: the pull is anonymous, and the token server wants credentials.
        r = await run(["verify", "-f", alice, "-o", "json", "--image", "localhost:\(port)/team/app:1.0"])
        #expect(r.code == 1 && statuses(r.stdout) == ["unauthorized"], "\(r.stdout)")
        #expect(r.stdout.contains("\"credential\": null"))
        // Kubelet order: both Secrets hold the same key, so their credentials are tried in input order: bob's is
        // denied, then alice's works.
        let both = try lab.dir.file("both.yaml", try String(contentsOfFile: bob, encoding: .utf8) + "---\n" + String(contentsOfFile: alice, encoding: .utf8))
        r = await run(["verify", "-f", both, "-o", "json", "--image", image])
        #expect(r.code == 0 && statuses(r.stdout) == ["ok"], "\(r.stdout)")
        let attempts = try #require(try JSONParser.parse(r.stdout)["results"]?.arrayValue?.first?["attempts"]?.arrayValue)
        #expect(attempts.map { $0["status"]?.stringValue } == ["denied", "ok"])
        outputs.expectNoSecrets([canary, bobPassword])
    }

    @Test func createRegistryVerifyRefusesBadCredentials() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        let port = try await lab.startRegistry(auth: .htpasswd(try lab.htpasswd([("alice", canary)])))
        let base = ["create-registry", "regcred", "-n", "team-a", "--server", "127.0.0.1:\(port)", "--username", "alice", "--password-stdin", "--verify"]
        var r = await run(base, stdin: canary + "-wrong")
        #expect(r.code == 1 && r.stdout.isEmpty, "\(r.stderr)")
        #expect(r.stderr.contains("unauthorized") && r.stderr.contains("not printed"))
        // The printed Secret holds the credentials by design: only standard error is checked for them.
        r = await dynsecret(base, stdin: canary)
        #expect(r.code == 0 && r.stdout.contains("kind: Secret") && r.stderr.contains("verify: ok"), "\(r.stderr)")
        _ = outputs.record(RunResult(code: r.code, stdout: "", stderr: r.stderr))
        r = await dynsecret(base + ["--no-verify-fail"], stdin: canary + "-wrong")
        #expect(r.code == 0 && r.stdout.contains("kind: Secret") && r.stderr.contains("warning:"), "\(r.stderr)")
        _ = outputs.record(RunResult(code: r.code, stdout: "", stderr: r.stderr))
        r = await run(["create-registry", "regcred", "--server", "x.example", "--username", "a", "--password-stdin", "--no-verify-fail"], stdin: canary)
        #expect(r.code == 2 && r.stdout.isEmpty)
        outputs.expectNoSecrets([canary])
    }

    @Test func validateVerifyPull() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        let port = try await lab.startRegistry(auth: .htpasswd(try lab.htpasswd([("alice", canary)])))
        try lab.push(port: port, repository: "team/app", tag: "1.0", user: "alice", password: canary)
        let registry = "127.0.0.1:\(port)"
        let manifests = pullSecretManifest("regcred", registries: [registry], user: "alice", password: canary) + """
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: api, namespace: team-a}
            spec:
              selector: {matchLabels: {app: api}}
              template:
                metadata: {labels: {app: api}}
                spec:
                  imagePullSecrets: [{name: regcred}]
                  containers:
                  - {name: app, image: \(registry)/team/app:1.0}
                  - {name: sidecar, image: \(registry)/team/app:missing}

            """
        let file = try lab.dir.file("deploy.yaml", manifests)
        var r = await run(["validate", "-f", file])
        #expect(r.code == 0, "\(r.stdout)")
        r = await run(["validate", "-f", file, "--verify-pull", "-o", "json"])
        #expect(r.code == 1, "\(r.stdout)\(r.stderr)")
        let findings = try #require(try JSONParser.parse(r.stdout)["findings"]?.arrayValue)
        let pulls = findings.filter { $0["rule"]?.stringValue == "image-pull-failed" }
        #expect(pulls.count == 1)
        #expect(pulls.first?["field"]?.stringValue == "spec.template.spec.containers[1].image")
        #expect(pulls.first?["message"]?.stringValue?.contains("not-found") == true)
        outputs.expectNoSecrets([canary])
    }

    @Test func clusterSecret() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        let port = try await lab.startRegistry(auth: .htpasswd(try lab.htpasswd([("alice", canary)])))
        let c = try await ClusterFixture.start()
        try await c.put(pullSecretManifest("regcred", registries: ["127.0.0.1:\(port)"], user: "alice", password: canary))
        try await c.put(pullSecretManifest("stale", registries: ["127.0.0.1:\(port)"], user: "alice", password: bobPassword))
        var r = await run(["verify", "--cluster", "--kubeconfig", c.kubeconfig, "-n", "team-a", "regcred"])
        #expect(r.code == 0, "\(r.stdout)\(r.stderr)")
        r = await run(["verify", "--cluster", "--kubeconfig", c.kubeconfig, "stale", "-o", "json"])
        #expect(r.code == 1 && statuses(r.stdout) == ["unauthorized"], "\(r.stdout)\(r.stderr)")
        r = await run(["verify", "--cluster", "--kubeconfig", c.kubeconfig, "missing"])
        #expect(r.code == 2 && r.stderr.contains("missing"))
        await c.stop()
        outputs.expectNoSecrets([canary, bobPassword])
    }

    @Test func badInput() async throws {
        let dir = try TempDir()
        var r = await run(["verify"])
        #expect(r.code == 2)
        r = await run(["verify", "--cluster"])
        #expect(r.code == 2 && r.stderr.contains("NAME"))
        let opaque = try dir.file("opaque.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ntype: Opaque\n")
        r = await run(["verify", "-f", opaque])
        #expect(r.code == 2 && r.stderr.contains("no pull secret"))
        let broken = try dir.file("broken.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{\"auths\":{\"r.example\":{\"auth\":\"%%%\"}}}'\n")
        r = await run(["verify", "-f", broken])
        #expect(r.code == 2 && r.stderr.contains(broken) && r.stderr.contains("data[.dockerconfigjson].auths[r.example].auth"), "\(r.stderr)")
        r = await run(["verify", "-f", opaque, "--image", "Bad:Image"])
        #expect(r.code == 2)
        r = await run(["verify", "--docker-config", dir.url.appendingPathComponent("nope.json").path])
        #expect(r.code == 2 && r.stderr.contains("no such file"))
    }

    /// 20 registries behind a token server that takes 500 ms per token: checked concurrently, the whole run takes
    /// about as long as one check; the serial sum is measured in the same test for comparison.
    @Test func twentyRegistriesConcurrently() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        try lab.makePKI()
        let realm = try await lab.startTokenServer(users: #"{"alice":{"password":"\#(canary)","pull":["*"]}}"#, delaySeconds: 0.5)
        var registries: [String] = []
        for _ in 0..<20 { registries.append("127.0.0.1:\(try await lab.startRegistry(auth: .token(realm: realm)))") }
        let all = try lab.dir.file("all.yaml", pullSecretManifest("all", registries: registries, user: "alice", password: canary))
        let clock = ContinuousClock()

        var serial = Duration.zero
        var slowest = Duration.zero
        for (i, registry) in registries.enumerated() {
            let one = try lab.dir.file("one-\(i).yaml", pullSecretManifest("one", registries: [registry], user: "alice", password: canary))
            let start = clock.now
            let r = await run(["verify", "-f", one])
            let t = clock.now - start
            #expect(r.code == 0, "\(r.stdout)")
            serial += t
            slowest = max(slowest, t)
        }
        let start = clock.now
        let r = await run(["verify", "-f", all, "-o", "json"])
        let concurrent = clock.now - start
        #expect(r.code == 0 && statuses(r.stdout) == Array(repeating: "ok", count: 20), "\(r.stdout)")
        print("verify: 20 registries concurrently \(concurrent), serial sum \(serial), slowest single \(slowest)")
        #expect(concurrent < slowest * 3, "concurrent \(concurrent) vs slowest single \(slowest)")
        #expect(concurrent * 4 < serial, "concurrent \(concurrent) vs serial sum \(serial)")
        outputs.expectNoSecrets([canary])
    }
}

@Suite struct ChallengeParsingTests {
    @Test func challenges() {
        let c = AuthChallenge.parse([#"Bearer realm="https://auth.example.com/token?a=1,b=2",service="registry.example.com",scope="repository:a/b:pull,push""#])
        #expect(c == [AuthChallenge(scheme: "bearer", parameters: ["realm": "https://auth.example.com/token?a=1,b=2", "service": "registry.example.com",
                                                                   "scope": "repository:a/b:pull,push"])])
        let several = AuthChallenge.parse([#"Basic realm="a \"quoted\" realm", Bearer realm=https://t.example/token, service=svc"#, "Negotiate abc=="])
        #expect(several.map(\.scheme) == ["basic", "bearer", "negotiate"])
        #expect(several[0].parameters["realm"] == #"a "quoted" realm"#)
        #expect(several[1].parameters == ["realm": "https://t.example/token", "service": "svc"])
        #expect(AuthChallenge.parse(["", ",,", " , "]).isEmpty)
        _ = AuthChallenge.parse(["=\"x", "Bearer realm=\"unterminated", "Bearer ,,, realm"])
        #expect(AuthChallenge.parse(["BASIC Realm=x"]) == [AuthChallenge(scheme: "basic", parameters: ["realm": "x"])])
    }

    @Test func endpoints() {
        #expect(RegistryEndpoint(key: "https://index.docker.io/v1/")?.host == "registry-1.docker.io")
        #expect(RegistryEndpoint(key: "docker.io")?.host == "registry-1.docker.io")
        #expect(RegistryEndpoint(imageDomain: "docker.io").host == "registry-1.docker.io")
        #expect(RegistryEndpoint(key: "http://LocalHost:5000/team")?.scheme == "http")
        #expect(RegistryEndpoint(key: "http://LocalHost:5000/team")?.host == "localhost:5000")
        #expect(RegistryEndpoint(key: "localhost:5000")?.isLoopback == true)
        #expect(RegistryEndpoint(key: "127.1.2.3:5000")?.isLoopback == true)
        #expect(RegistryEndpoint(key: "[::1]:5000")?.isLoopback == true)
        #expect(RegistryEndpoint(key: "127.example.com")?.isLoopback == false)
        #expect(RegistryEndpoint(key: "ghcr.io")?.isLoopback == false)
        #expect(RegistryEndpoint(key: "https:///x") == nil)
    }
}
