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
    private let helpers = Mutex<[Process]>([])

    init() throws { dir = try TempDir() }

    deinit { stopAll() }

    func path(_ name: String) -> String { dir.url.appendingPathComponent(name).path }

    func stopAll() {
        for p in processes.withLock({ Array($0.values) }) + helpers.withLock({ $0 }) { Self.kill(p) }
        processes.withLock { $0 = [:] }
        helpers.withLock { $0 = [] }
    }

    func stop(port: Int) {
        guard let p = processes.withLock({ $0.removeValue(forKey: port) }) else { return }
        Self.kill(p)
    }

    /// SIGKILL, then let Foundation reap the child (it waits for its children itself; a `waitpid` behind its back
    /// could reap a reused PID or leave its bookkeeping waiting).
    static func kill(_ p: Process) {
        guard p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
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

    /// A test CA with a server certificate for 127.0.0.1, localhost and registry.proxied.test (a name only a proxy
    /// can reach: `.test` never resolves), and a second, unrelated CA.
    func makePKI() throws {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _ = try dir.file("ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:registry.proxied.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
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

    /// Loopback ports handed to registries by any lab of this process. A port is never handed out twice, so a
    /// registry a test stopped on purpose is not replaced by another test's registry on the same port.
    private static let usedPorts = Mutex<Set<Int>>([])

    /// A random loopback port outside the kernel's ephemeral range (which servers on port 0 and outgoing
    /// connections take), not handed out before in this process.
    static func drawPort() -> Int {
        let range = ((try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? "")
            .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        let ephemeral = range.count == 2 ? range[0]...range[1] : 32768...60999
        return usedPorts.withLock { used in
            while true {
                let port = Int.random(in: 10000...65000)
                if !ephemeral.contains(port) && !used.contains(port) {
                    used.insert(port)
                    return port
                }
            }
        }
    }

    /// Starts a registry on a free loopback port and returns the port once that registry — this process, not
    /// another listener on the port — answers `/v2/`. Each attempt has a deadline; a port another listener holds
    /// (our registry exits with "address already in use") is given up for a new one.
    func startRegistry(auth: Auth, tls: Bool = false) async throws -> Int {
        let registry = try #require(dockerRegistryPath)
        let clock = ContinuousClock()
        var failures: [String] = []
        for _ in 0..<10 {
            let port = Self.drawPort()
            // Every answer of this registry carries the marker, so the probe knows whom it reached.
            let marker = UUID().uuidString
            var config = """
                version: 0.1
                log:
                  level: info
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
                  headers:
                    X-Dynsecret-Lab: [\(marker)]

                """
            if tls { config += "  tls:\n    certificate: \(path("server.crt"))\n    key: \(path("server.key"))\n" }
            switch auth {
            case .htpasswd(let file): config += "auth:\n  htpasswd:\n    realm: test-realm\n    path: \(file)\n"
            case .token(let realm):
                config += "auth:\n  token:\n    realm: \(realm)\n    service: test-registry\n    issuer: verify-test-issuer\n    rootcertbundle: \(path("signing.crt"))\n"
            }
            let file = try dir.file("registry-\(port).yml", config)
            let logFile = try dir.file("registry-\(port).log", "")
            let p = try launch(registry, ["serve", file], stdout: nil, stderr: logFile)
            let fresh = processes.withLock { table in
                guard table[port] == nil else { return false }
                table[port] = p
                return true
            }
            guard fresh else {
                Self.kill(p)
                throw CLIError("port \(port) handed out twice")
            }
            let url = "\(tls ? "https" : "http")://127.0.0.1:\(port)/v2/"
            let deadline = clock.now + .seconds(20)
            var last = ""
            while p.isRunning && clock.now < deadline {
                let probe = try runProcess("/usr/bin/curl", ["-sS", "-k", "-D", "-", "-o", "/dev/null", "--connect-timeout", "1", "--max-time", "2", url],
                                           timeout: .seconds(10))
                if probe.code == 0 && Self.answeredByRegistry(headers: probe.stdout, marker: marker) && p.isRunning { return port }
                last = probe.stderr.isEmpty ? probe.stdout.prefix(200).description : probe.stderr
                try await Task.sleep(for: .milliseconds(50))
            }
            let logText = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
            failures.append("port \(port): \(p.isRunning ? "no answer within 20 s (\(last))" : "exited: \(logText.suffix(300))")")
            stop(port: port)
        }
        throw CLIError("docker-registry did not start: " + failures.joined(separator: "; "))
    }

    /// Whether a `curl -D -` header dump is a distribution registry's answer carrying `marker`.
    static func answeredByRegistry(headers: String, marker: String) -> Bool {
        let lines = headers.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        return lines.contains("docker-distribution-api-version: registry/2.0") && lines.contains("x-dynsecret-lab: \(marker.lowercased())")
    }

    /// Starts a role of `registry_token_server.py` and returns its port (the first line it prints) and process.
    func startHelper(_ args: [String]) async throws -> (port: Int, process: Process) {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("registry_token_server.py").path
        let id = UUID().uuidString
        let outFile = try dir.file("helper-\(id).out", "")
        let errFile = try dir.file("helper-\(id).err", "")
        let p = try launch("/usr/bin/env", ["python3", script] + args, stdout: outFile, stderr: errFile)
        helpers.withLock { $0.append(p) }
        // The first line is the port; polled from the file with a deadline, never a blocking read.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        while clock.now < deadline {
            let text = (try? String(contentsOfFile: outFile, encoding: .utf8)) ?? ""
            if let newline = text.firstIndex(of: "\n") {
                let port = try #require(Int(text[..<newline]), "registry_token_server.py \(args.first ?? "") printed \(text.prefix(100))")
                return (port, p)
            }
            if !p.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        Self.kill(p)
        let stderr = (try? String(contentsOfFile: errFile, encoding: .utf8)) ?? ""
        throw CLIError("registry_token_server.py \(args.first ?? "") did not print its port within 30 s: \(stderr.suffix(1000))")
    }

    /// Starts the token server and returns its realm URL.
    func startTokenServer(users: String, delaySeconds: Double = 0) async throws -> String {
        let usersFile = try dir.file("users-\(UUID().uuidString).json", users)
        let port = try await startHelper([usersFile, path("signing.key"), path("signing.crt"), "verify-test-issuer", String(delaySeconds)]).port
        return "http://127.0.0.1:\(port)/token"
    }

    /// Starts a logging helper (`record` or `sniff` in front of `upstream`, or `echo basic|bearer`) and returns
    /// its port and its log.
    func startLoggingHelper(_ role: String, _ argument: String) async throws -> (port: Int, log: HelperLog) {
        let log = HelperLog(path: try dir.file("\(role)-\(UUID().uuidString).log", ""))
        return (try await startHelper([role, argument, log.path]).port, log)
    }

    /// Pushes a one-layer image through the registry API with curl: two blob uploads (POST, then PUT with the
    /// digest) and a Docker schema 2 manifest. Returns the manifest's digest.
    @discardableResult
    func push(port: Int, repository: String, tag: String, user: String, password: String) throws -> String {
        let script = """
            set -euo pipefail
            base=http://127.0.0.1:\(port); repo=\(repository); tag=\(tag); cd "$1"
            limits=(--connect-timeout 5 --max-time 30)
            auth="$(cat auth)"
            printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}' > config.json
            printf 'dynsecret verify test layer %s' "$repo" | gzip -c > layer.tar.gz
            upload() {
              digest="sha256:$(sha256sum "$1" | cut -d' ' -f1)"
              loc="$(curl -fsS "${limits[@]}" -u "$auth" -X POST -D - -o /dev/null "$base/v2/$repo/blobs/uploads/" | tr -d '\\r' | awk 'tolower($1)=="location:"{print $2}')"
              case "$loc" in http*) ;; *) loc="$base$loc";; esac
              case "$loc" in *\\?*) sep='&';; *) sep='?';; esac
              curl -fsS "${limits[@]}" -u "$auth" -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" "$loc${sep}digest=$digest" -o /dev/null
              echo "$digest"
            }
            cdigest="$(upload config.json)"; ldigest="$(upload layer.tar.gz)"
            csize=$(stat -c %s config.json); lsize=$(stat -c %s layer.tar.gz)
            printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%s,"digest":"%s"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%s,"digest":"%s"}]}' \\
              "$csize" "$cdigest" "$lsize" "$ldigest" > manifest.json
            curl -fsS "${limits[@]}" -u "$auth" -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' --data-binary @manifest.json "$base/v2/$repo/manifests/$tag" -o /dev/null
            echo "sha256:$(sha256sum manifest.json | cut -d' ' -f1)"
            """
        let work = path("push-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        _ = try dir.file("\(URL(fileURLWithPath: work).lastPathComponent)/auth", "\(user):\(password)")
        let r = try runProcess("/bin/bash", ["-c", script, "push", work], timeout: .seconds(90))
        #expect(r.code == 0, "push failed: \(r.stderr)")
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
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

/// The JSON-lines log of a `registry_token_server.py` helper (`record`, `sniff`, `echo`).
struct HelperLog: Sendable {
    let path: String

    func events() -> [JSONValue] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
    }

    /// The events whose `field` is the string `value`.
    func events(_ field: String, _ value: String) -> [JSONValue] { events().filter { $0[field]?.stringValue == value } }
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
        let digest = try lab.push(port: port, repository: "team/app", tag: "1.0", user: "alice", password: canary)
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
        // By digest, as a runtime pulls `name:tag@digest` (the digest wins over the tag); an unknown digest is missing.
        let unknown = "sha256:" + String(repeating: "0", count: 64)
        r = await run(["verify", "-f", good, "-o", "json", "--image", "\(registry)/team/app@\(digest)", "--image", "\(registry)/team/app:9.9@\(digest)",
                       "--image", "\(registry)/team/app@\(unknown)"])
        #expect(digest.hasPrefix("sha256:") && r.code == 1 && statuses(r.stdout) == ["ok", "ok", "not-found"], "\(digest) \(r.stdout)")

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
        let upstream = try await lab.startRegistry(auth: .htpasswd(try lab.htpasswd([("alice", canary)])), tls: true)
        // The keys name a sniffing proxy in front of the TLS registry: TLS connections are piped through; a
        // plaintext HTTP request (a fallback to HTTP) is logged and answered as an open registry would answer it.
        let (port, sniff) = try await lab.startLoggingHelper("sniff", String(upstream))
        let good = try lab.dir.file("good.yaml", pullSecretManifest("regcred", registries: ["127.0.0.1:\(port)", "https://localhost:\(port)"], user: "alice", password: canary))

        var r = await run(["verify", "-f", good, "--registry-ca", lab.path("ca.crt"), "-o", "json"])
        #expect(r.code == 0 && statuses(r.stdout) == ["ok", "ok"], "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("\"endpoint\": \"https://127.0.0.1:\(port)\""))
        // No CA: the system trust does not know the test CA; a wrong CA neither. Neither falls back to plain HTTP:
        // every connection to the port starts a TLS handshake, and no plaintext request arrives.
        let handshakesBefore = sniff.events("kind", "tls").count
        r = await run(["verify", "-f", good, "-o", "json"])
        #expect(r.code == 1 && statuses(r.stdout) == ["tls-error", "tls-error"], "\(r.stdout)")
        r = await run(["verify", "-f", good, "--registry-ca", lab.path("other-ca.crt"), "-o", "json"])
        #expect(r.code == 1 && statuses(r.stdout) == ["tls-error", "tls-error"], "\(r.stdout)")
        #expect(sniff.events("kind", "tls").count - handshakesBefore >= 4, "the checks reached the port: \(sniff.events())")
        #expect(sniff.events("kind", "plain").isEmpty, "plain HTTP reached the TLS port after a certificate error: \(sniff.events("kind", "plain"))")
        // --insecure-registry: unverified TLS for that host only.
        r = await run(["verify", "-f", good, "--insecure-registry", "127.0.0.1", "-o", "json"])
        #expect(r.code == 1 && statuses(r.stdout) == ["ok", "tls-error"], "\(r.stdout)")
        r = await run(["verify", "-f", good, "--insecure-registry", "127.0.0.1:\(port)", "--insecure-registry", "localhost", "-o", "json"])
        #expect(r.code == 0 && statuses(r.stdout) == ["ok", "ok"], "\(r.stdout)")
        #expect(sniff.events("kind", "plain").isEmpty, "\(sniff.events("kind", "plain"))")
        // A file that is not a certificate is an input error.
        r = await run(["verify", "-f", good, "--registry-ca", good])
        #expect(r.code == 2 && r.stderr.contains("--registry-ca") && r.stdout.isEmpty)
        // The trap springs: a key with an explicit http:// scheme sends plain HTTP to the port, and it is seen.
        let plain = try lab.dir.file("plain.yaml", pullSecretManifest("plain", registries: ["http://127.0.0.1:\(port)"], user: "alice", password: canary))
        r = await run(["verify", "-f", plain, "-o", "json"])
        #expect(statuses(r.stdout) == ["anonymous"], "\(r.stdout)")
        #expect(sniff.events("kind", "plain").map { $0["line"]?.stringValue } == ["GET /v2/ HTTP/1.1"], "\(sniff.events())")
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

    /// A registry reached through a redirect to another host:port (as registry.k8s.io redirects its API): the
    /// redirect is followed, and the credentials sent to the key's host never follow it to the other host.
    @Test func redirectsAreFollowedWithoutCarryingCredentials() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        let upstream = try await lab.startRegistry(auth: .htpasswd(try lab.htpasswd([("alice", canary)])))
        try lab.push(port: upstream, repository: "team/app", tag: "1.0", user: "alice", password: canary)
        let (recordPort, reached) = try await lab.startLoggingHelper("record", String(upstream))
        let (port, redirected) = try await lab.startLoggingHelper("redirect", String(recordPort))
        let registry = "127.0.0.1:\(port)"
        let alice = try lab.dir.file("alice.yaml", pullSecretManifest("alice", registries: [registry], user: "alice", password: canary))
        let r = await run(["verify", "-f", alice, "-o", "json", "--image", "\(registry)/team/app:1.0"])
        // Followed: the registry's own challenge and refusal come back (not "HTTP 307"); the Basic credentials went
        // to the key's host only, so the other host refuses the request as unauthenticated.
        #expect(r.code == 1 && statuses(r.stdout) == ["unauthorized"], "\(r.stdout)\(r.stderr)")
        #expect(!r.stdout.contains("307"), "\(r.stdout)")
        #expect(redirected.events().contains { $0["authorization"]?.stringValue == "Basic" }, "\(redirected.events())")
        #expect(!reached.events().isEmpty && !reached.events().contains { $0["authorization"] != .null },
                "credentials followed the redirect to another host: \(reached.events())")
    }

    /// The proxy environment applies as for a container runtime: `HTTPS_PROXY` carries a registry's TLS through an
    /// HTTP CONNECT tunnel, `NO_PROXY` exempts a host, and loopback registries are never proxied. Run as a process
    /// so the variables are its own.
    @Test func proxyEnvironmentIsRespected() async throws {
        let binary = try #require(dynsecretBinary, "the dynsecret binary was not built")
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        try lab.makePKI()
        let upstream = try await lab.startRegistry(auth: .htpasswd(try lab.htpasswd([("alice", canary)])), tls: true)
        let (proxyPort, proxy) = try await lab.startLoggingHelper("connect", String(upstream))
        let secret = try lab.dir.file("proxied.yaml", pullSecretManifest("proxied", registries: ["registry.proxied.test", "127.0.0.1:\(upstream)"], user: "alice", password: canary))
        func verify(_ env: [String]) throws -> RunResult {
            let r = try runProcess("/usr/bin/env", ["-u", "NO_PROXY", "-u", "no_proxy", "-u", "https_proxy", "-u", "http_proxy"] + env
                + [binary, "verify", "-f", secret, "--registry-ca", lab.path("ca.crt"), "-o", "json", "--registry-timeout", "5"], timeout: .seconds(60))
            return outputs.record(r)
        }
        var r = try verify(["HTTPS_PROXY=http://127.0.0.1:\(proxyPort)"])
        #expect(r.code == 0 && statuses(r.stdout) == ["ok", "ok"], "\(r.stdout)\(r.stderr)")
        let lines = proxy.events().compactMap { $0["line"]?.stringValue }
        #expect(!lines.isEmpty && lines.allSatisfy { $0 == "CONNECT registry.proxied.test:443 HTTP/1.1" }, "\(lines)")
        // NO_PROXY names the host: no tunnel, and the name does not resolve (a resolver that answers for `.test`
        // anyway would lead to a connection or certificate failure).
        r = try verify(["HTTPS_PROXY=http://127.0.0.1:\(proxyPort)", "NO_PROXY=example.org,registry.proxied.test"])
        let direct = statuses(r.stdout)  // sorted by key: the loopback registry first
        #expect(r.code == 1 && direct.count == 2 && direct[0] == "ok" && ["unreachable", "tls-error"].contains(direct[1]), "\(r.stdout)\(r.stderr)")
        #expect(proxy.events().count == lines.count, "\(proxy.events())")
        outputs.expectNoSecrets([canary])
    }

    /// A token realm that streams without end: the check stops reading at the 4 MiB limit and reports the
    /// registry unreachable with the reason instead of filling memory.
    @Test func endlessTokenResponseIsCutOff() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        let (port, flood) = try await lab.startLoggingHelper("flood", "-")
        let registry = "127.0.0.1:\(port)"
        let alice = try lab.dir.file("alice.yaml", pullSecretManifest("alice", registries: [registry], user: "alice", password: canary))
        let r = await run(["verify", "-f", alice, "-o", "json"])
        #expect(r.code == 1 && statuses(r.stdout) == ["unreachable"], "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("response body larger than 4194304 bytes"), "\(r.stdout)")
        let sent = await waitFor(.seconds(10)) { !flood.events().isEmpty }
        var bytes = -1
        if case .number(let n)? = flood.events().first?["sent"] { bytes = Int(n) ?? -1 }
        #expect(sent != nil && bytes >= 0 && bytes < 64 << 20, "the token server sent \(bytes) bytes before the client hung up")
        outputs.expectNoSecrets([canary])
    }

    /// A token server that grants pulls of a public repository to anonymous requests: the image checks as
    /// pullable without credentials, and no check sends an Authorization header with its first `GET /v2/`.
    @Test func anonymousToken() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        try lab.makePKI()
        let basic = try await lab.startRegistry(auth: .htpasswd(try lab.htpasswd([("alice", canary)])))
        try lab.push(port: basic, repository: "public/app", tag: "1.0", user: "alice", password: canary)
        try lab.push(port: basic, repository: "team/app", tag: "1.0", user: "alice", password: canary)
        let realm = try await lab.startTokenServer(users: #"{"alice":{"password":"\#(canary)","pull":["*"]},"":{"pull":["public/app"]}}"#)
        let upstream = try await lab.startRegistry(auth: .token(realm: realm))
        // The registry is reached through a proxy that logs each request's Authorization scheme.
        let (port, requests) = try await lab.startLoggingHelper("record", String(upstream))
        let registry = "127.0.0.1:\(port)"
        // Credentials for another registry only: the kubelet would pull the images anonymously.
        let noCredentials = try lab.dir.file("elsewhere.json", #"{"auths":{"elsewhere.example":{"auth":"\#(RegistryCredential(username: "nobody", password: "unused").auth)"}}}"#)
        let alice = try lab.dir.file("alice.yaml", pullSecretManifest("alice", registries: [registry], user: "alice", password: canary))

        /// The requests the registry received during `body`.
        func received(_ body: () async -> Void) async -> [JSONValue] {
            let before = requests.events().count
            await body()
            return Array(requests.events().dropFirst(before))
        }
        func firstIsAnonymousProbe(_ seen: [JSONValue]) -> Bool {
            seen.first?["method"]?.stringValue == "GET" && seen.first?["path"]?.stringValue == "/v2/" && seen.first?["authorization"] == .null
        }

        var r = RunResult(code: -1, stdout: "", stderr: "")
        var seen = await received { r = await run(["verify", "--docker-config", noCredentials, "-o", "json", "--image", "\(registry)/public/app:1.0"]) }
        #expect(r.code == 0 && statuses(r.stdout) == ["anonymous"], "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("\"credential\": null"), "\(r.stdout)")
        #expect(firstIsAnonymousProbe(seen), "\(seen)")
        #expect(seen.contains { $0["path"]?.stringValue == "/v2/public/app/manifests/1.0" && $0["authorization"]?.stringValue == "Bearer" },
                "the manifest is asked for with the anonymous token: \(seen)")
        #expect(!seen.contains { $0["authorization"]?.stringValue == "Basic" }, "\(seen)")
        // The anonymous token grants nothing on a private repository.
        seen = await received { r = await run(["verify", "--docker-config", noCredentials, "-o", "json", "--image", "\(registry)/team/app:1.0"]) }
        #expect(r.code == 1 && statuses(r.stdout) == ["unauthorized"], "\(r.stdout)")
        #expect(firstIsAnonymousProbe(seen), "\(seen)")
        // With credentials the first request is the anonymous probe too; the credential goes only to the token server.
        seen = await received { r = await run(["verify", "-f", alice, "-o", "json", "--image", "\(registry)/team/app:1.0"]) }
        #expect(r.code == 0 && statuses(r.stdout) == ["ok"], "\(r.stdout)")
        #expect(firstIsAnonymousProbe(seen) && !seen.contains { $0["authorization"]?.stringValue == "Basic" }, "\(seen)")
        seen = await received { r = await run(["verify", "-f", alice, "-o", "json"]) }
        #expect(r.code == 0 && statuses(r.stdout) == ["ok"], "\(r.stdout)")
        #expect(firstIsAnonymousProbe(seen) && seen.count == 2 && seen.last?["authorization"]?.stringValue == "Bearer", "\(seen)")
        outputs.expectNoSecrets([canary])
    }

    /// Fake registries quote what they were sent — the password, the Basic credential and the token — in their
    /// error messages (401, 403 and 500 from the registry; 401 and 403 from its token realm). The messages are
    /// reported, and none of the secrets reaches standard output or standard error, in text or JSON.
    @Test func canaryEchoedByRegistry() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        // (user, status of the login check, status of the image check)
        let modes: [(String, [(String, String, String)])] = [
            ("basic", [("u401", "unauthorized", "unauthorized"), ("u403", "denied", "denied"), ("u500", "unreachable", "unreachable")]),
            ("bearer", [("u401", "unauthorized", "denied"), ("u403", "denied", "denied"), ("u500", "unreachable", "unreachable"),
                        ("reject", "unauthorized", "unauthorized"), ("tok403", "denied", "denied")]),
        ]
        var secrets = [canary]
        var tokens: Set<String> = []
        for (mode, users) in modes {
            let (port, echoes) = try await lab.startLoggingHelper("echo", mode)
            let registry = "127.0.0.1:\(port)"
            for (user, login, pull) in users {
                let auth = RegistryCredential(username: user, password: canary).auth
                secrets.append(auth)
                let file = try lab.dir.file("\(mode)-\(user).yaml", pullSecretManifest(user, registries: [registry], user: user, password: canary))
                for json in [false, true] {
                    for image in [nil, "\(registry)/team/app:1.0"] {
                        let echoed = echoes.events().count
                        let args = ["verify", "-f", file] + (json ? ["-o", "json"] : []) + (image.map { ["--image", $0] } ?? [])
                        let r = await run(args)
                        let what = "\(mode) \(user) \(args.dropFirst(3))"
                        #expect(r.code == 1, "\(what): \(r.stdout)\(r.stderr)")
                        if json { #expect(statuses(r.stdout) == [image == nil ? login : pull], "\(what): \(r.stdout)") }
                        // The registry did quote the secrets, and its message is reported: only redaction keeps them out.
                        let quoted = Array(echoes.events().dropFirst(echoed))
                        #expect(!quoted.isEmpty, "\(what): the fake registry sent no message with the secrets")
                        #expect(r.stdout.contains("ECHO password=") && r.stdout.contains("ECHO credential="), "\(what): \(r.stdout)")
                        tokens.formUnion(quoted.compactMap { $0["token"]?.stringValue })
                        let text = r.stdout + "\n" + r.stderr
                        #expect(!text.contains(canary) && !text.contains(auth), "\(what): the password or the credential appeared in the output")
                        #expect(!tokens.contains { text.contains($0) } && !text.contains("eyJhbGci"), "\(what): a token appeared in the output")
                    }
                }
            }
        }
        // Each bearer user the token realm accepts (u401, u403, u500) got a token per run, and had it quoted.
        #expect(tokens.count >= 12, "tokens quoted: \(tokens.count)")
        outputs.expectNoSecrets(secrets + tokens.sorted())
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
        // A pull secret without its payload is reported at the field, with or without a NAME (not "not a pull
        // secret type", not skipped).
        let empty = try dir.file("empty.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: e}\ntype: kubernetes.io/dockerconfigjson\ndata: {}\n")
        for args in [["verify", "-f", empty], ["verify", "-f", empty, "e"]] {
            r = await run(args)
            #expect(r.code == 2 && r.stderr.contains(empty) && r.stderr.contains("data[.dockerconfigjson]: Required value"), "\(r.stderr)")
        }
        r = await run(["verify", "-f", opaque, "x"])
        #expect(r.code == 2 && r.stderr.contains("not a pull secret type"), "\(r.stderr)")
        r = await run(["verify", "--docker-config", broken])
        #expect(r.code == 2 && r.stderr.hasPrefix("error: --docker-config \(broken): "), "\(r.stderr)")
        r = await run(["verify", "-f", opaque, "--image", "Bad:Image"])
        #expect(r.code == 2)
        r = await run(["verify", "--docker-config", dir.url.appendingPathComponent("nope.json").path])
        #expect(r.code == 2 && r.stderr.contains("no such file"))
    }

    /// 20 registries behind a token server that takes D = 500 ms per token: checked concurrently, the whole run
    /// takes about as long as one check. Bounds, with each single check and the serial sum measured in the same
    /// test: concurrent < 4 × D + the slowest single check (serial checks would need at least 20 × D), and concurrent <
    /// serial sum / 5. The concurrent run
    /// is timed three times and the fastest counts, so one scheduling hiccup on a busy machine does not fail it.
    @Test func twentyRegistriesConcurrently() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        try lab.makePKI()
        let tokenDelay = Duration.milliseconds(500)
        let realm = try await lab.startTokenServer(users: #"{"alice":{"password":"\#(canary)","pull":["*"]}}"#, delaySeconds: 0.5)
        var registries: [String] = []
        for _ in 0..<20 { registries.append("127.0.0.1:\(try await lab.startRegistry(auth: .token(realm: realm)))") }
        let all = try lab.dir.file("all.yaml", pullSecretManifest("all", registries: registries, user: "alice", password: canary))
        let clock = ContinuousClock()

        // Warm-up (first connections, the CLI's first run), not timed.
        var r = await run(["verify", "-f", all, "-o", "json"])
        #expect(r.code == 0 && statuses(r.stdout) == Array(repeating: "ok", count: 20), "\(r.stdout)")

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
        // Each check waits for its token: the serial sum cannot undercut 20 × D.
        #expect(serial >= tokenDelay * 20, "serial sum \(serial): the token server did not delay")

        var concurrent = Duration.seconds(3600)
        for _ in 0..<3 {
            let start = clock.now
            r = await run(["verify", "-f", all, "-o", "json"])
            concurrent = min(concurrent, clock.now - start)
            #expect(r.code == 0 && statuses(r.stdout) == Array(repeating: "ok", count: 20), "\(r.stdout)")
        }
        print("verify: 20 registries concurrently \(concurrent) (best of 3), serial sum \(serial), slowest single \(slowest)")
        #expect(concurrent < tokenDelay * 4 + slowest, "concurrent \(concurrent) vs 4 × \(tokenDelay) + slowest single \(slowest)")
        #expect(concurrent * 5 < serial, "concurrent \(concurrent) vs serial sum \(serial)")
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

/// The harness of the verify tests: `runProcess`'s deadline and stream handling, port choice, the readiness check.
@Suite struct VerifyTestsHarness {
    @Test func runProcessKillsAChildPastItsDeadline() throws {
        let clock = ContinuousClock()
        let start = clock.now
        #expect(throws: ProcessTimedOut.self) { try runProcess("/bin/sh", ["-c", "echo started >&2; exec sleep 60"], timeout: .seconds(1)) }
        #expect(clock.now - start < .seconds(20))
    }

    /// A child that fills standard error (far past a pipe's 64 KiB) before writing standard output.
    @Test func runProcessDrainsBothStreams() throws {
        let r = try runProcess("/bin/sh", ["-c", "head -c 1000000 /dev/zero | tr '\\0' e >&2; head -c 300000 /dev/zero | tr '\\0' o; exit 3"], timeout: .seconds(60))
        #expect(r.code == 3 && r.stderr.count == 1_000_000 && r.stdout.count == 300_000)
        let echo = try runProcess("/bin/cat", [], stdin: "to standard input")
        #expect(echo.code == 0 && echo.stdout == "to standard input")
    }

    @Test func portsAreOutsideTheEphemeralRangeAndNeverRepeat() throws {
        let range = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8).split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        let ports = (0..<200).map { _ in RegistryLab.drawPort() }
        #expect(Set(ports).count == ports.count)
        #expect(range.count != 2 || ports.allSatisfy { !(range[0]...range[1]).contains($0) })
    }

    @Test func readinessNeedsTheRegistryHeaderAndOurMarker() {
        let ours = "HTTP/1.1 401 Unauthorized\r\nDocker-Distribution-Api-Version: registry/2.0\r\nX-Dynsecret-Lab: ABC-123\r\n\r\n"
        #expect(RegistryLab.answeredByRegistry(headers: ours, marker: "ABC-123"))
        #expect(!RegistryLab.answeredByRegistry(headers: ours, marker: "OTHER"), "another test's registry on the port")
        #expect(!RegistryLab.answeredByRegistry(headers: "HTTP/1.1 200 OK\r\nX-Dynsecret-Lab: ABC-123\r\n\r\n", marker: "ABC-123"))
        #expect(!RegistryLab.answeredByRegistry(headers: "", marker: "ABC-123"))
    }
}
