import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Synchronization
import Testing

let opensslPath: String? = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }

final class TempDir: Sendable {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("dynsecret-kube-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
    func write(_ name: String, _ text: String, mode: Int = 0o600) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: file(name)))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file(name))
    }
    func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: file(name)))) }
}

/// Runs a command to completion on a dedicated thread.
func sh(_ path: String, _ args: [String]) async -> Int32 {
    await withCheckedContinuation { cont in
        Thread {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: path)
            p.arguments = args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            do { try p.run() } catch { cont.resume(returning: -1); return }
            p.waitUntilExit()
            cont.resume(returning: p.terminationStatus)
        }.start()
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI.
func makePKI(_ dir: TempDir, prefix: String = "") async throws {
    let o = try #require(opensslPath)
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    try dir.write("ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n")
    #expect(await sh(o, ["req", "-x509"] + ec + ["-keyout", dir.file("\(prefix)ca.key"), "-out", dir.file("\(prefix)ca.crt"), "-subj", "/CN=\(prefix)test CA", "-days", "2"]) == 0)
    for cn in ["server", "client"] {
        #expect(await sh(o, ["req"] + ec + ["-keyout", dir.file("\(prefix)\(cn).key"), "-out", dir.file("\(prefix)\(cn).csr"), "-subj", "/CN=\(cn == "server" ? "127.0.0.1" : "alice")"]) == 0)
        #expect(await sh(o, ["x509", "-req", "-in", dir.file("\(prefix)\(cn).csr"), "-CA", dir.file("\(prefix)ca.crt"), "-CAkey", dir.file("\(prefix)ca.key"),
                             "-CAcreateserial", "-out", dir.file("\(prefix)\(cn).crt"), "-days", "2", "-extfile", dir.file("ext.cnf")]) == 0)
    }
}

/// `openssl s_server -www` on a free loopback port; stopped by `stop()`.
final class OpenSSLServer: Sendable {
    let process: Process
    let port: Int

    init(cert: String, key: String, clientCA: String? = nil) async throws {
        let o = try #require(opensslPath)
        var lastError = ""
        for attempt in 0..<20 {
            let port = 20000 + Int.random(in: 0..<40000) + attempt
            let p = Process()
            p.executableURL = URL(fileURLWithPath: o)
            var args = ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", cert, "-key", key, "-www", "-quiet"]
            if let clientCA { args += ["-Verify", "1", "-CAfile", clientCA, "-verify_return_error"] }
            p.arguments = args
            p.standardOutput = FileHandle.nullDevice
            let err = Pipe()
            p.standardError = err
            p.standardInput = Pipe()
            try p.run()
            // Ready when the port accepts connections.
            for _ in 0..<100 {
                if !p.isRunning { break }
                if await sh("/usr/bin/env", ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"]) == 0 {
                    self.process = p
                    self.port = port
                    return
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            kill(p.processIdentifier, SIGKILL)
            lastError = "s_server did not start on port \(port)"
        }
        throw KubeConfigError(lastError)
    }

    /// s_server ignores SIGTERM: kill it.
    func stop() {
        kill(process.processIdentifier, SIGKILL)
    }
}

@Suite(.serialized, .enabled(if: opensslPath != nil, "needs the openssl CLI"))
struct TLSTests {
    func transport(ca: [UInt8]?, cert: [UInt8]? = nil, key: [UInt8]? = nil) -> CurlTransport {
        var s = TransportSettings()
        s.caPEM = ca
        s.clientCertificatePEM = cert
        s.clientKeyPEM = key
        return CurlTransport(settings: s, maxConcurrentRequests: 1)
    }

    @Test func serverVerifiedWithCAData() async throws {
        let dir = try TempDir()
        try await makePKI(dir)
        let server = try await OpenSSLServer(cert: dir.file("server.crt"), key: dir.file("server.key"))
        defer { server.stop() }
        let t = transport(ca: try dir.bytes("ca.crt"))
        let r = try await t.send(HTTPRequest(method: "GET", url: "https://127.0.0.1:\(server.port)/"))
        #expect(r.status == 200)
        #expect(String(decoding: r.body, as: UTF8.self).contains("s_server"))
    }

    @Test func wrongCAIsRejected() async throws {
        let dir = try TempDir()
        try await makePKI(dir)
        try await makePKI(dir, prefix: "other-")
        let server = try await OpenSSLServer(cert: dir.file("server.crt"), key: dir.file("server.key"))
        defer { server.stop() }
        let t = transport(ca: try dir.bytes("other-ca.crt"))
        do {
            _ = try await t.send(HTTPRequest(method: "GET", url: "https://127.0.0.1:\(server.port)/"))
            Issue.record("a server signed by another CA was accepted")
        } catch let e as TransportError {
            #expect(e.message.contains("certificate"), "\(e.message)")
        }
    }

    @Test func clientCertificateAuthentication() async throws {
        let dir = try TempDir()
        try await makePKI(dir)
        let server = try await OpenSSLServer(cert: dir.file("server.crt"), key: dir.file("server.key"), clientCA: dir.file("ca.crt"))
        defer { server.stop() }
        let ok = transport(ca: try dir.bytes("ca.crt"), cert: try dir.bytes("client.crt"), key: try dir.bytes("client.key"))
        let r = try await ok.send(HTTPRequest(method: "GET", url: "https://127.0.0.1:\(server.port)/"))
        #expect(r.status == 200)
        #expect(String(decoding: r.body, as: UTF8.self).contains("alice"), "the server saw the client certificate's subject")
        let without = transport(ca: try dir.bytes("ca.crt"))
        await #expect(throws: TransportError.self) {
            _ = try await without.send(HTTPRequest(method: "GET", url: "https://127.0.0.1:\(server.port)/"))
        }
    }

    @Test func kubeconfigWithCADataAndTokenAgainstTLSEmulator() async throws {
        let dir = try TempDir()
        try await makePKI(dir)
        let e = try await startEmulator {
            $0.tlsCertificatePath = dir.file("server.crt")
            $0.tlsKeyPath = dir.file("server.key")
        }
        defer { Task { await e.stop() } }
        try dir.write("config", e.kubeconfig(token: adminToken, caPEM: try dir.bytes("ca.crt"), namespace: "kube-system"))
        let config = try KubeConfigLoader.load(kubeconfigPath: dir.file("config"))
        #expect(config.namespace == "kube-system")
        #expect(config.server.hasPrefix("https://127.0.0.1:"))
        let c = KubeClient(config: config)
        let list = try await c.list(.serviceAccounts, namespace: c.config.namespace)
        #expect(list.items.map { $0["metadata"]?["name"]?.stringValue } == ["default"])
    }
}

@Suite(.serialized) struct CredentialTests {
    @Test func execPluginTokenIsCachedUntilExpiry() async throws {
        let dir = try TempDir()
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        for (expiry, expectedRuns) in [("2999-01-01T00:00:00Z", 1), ("2000-01-01T00:00:00Z", 3)] {
            try? FileManager.default.removeItem(atPath: dir.file("runs"))
            try dir.write("plugin.sh", """
            #!/bin/sh
            echo run >> "\(dir.file("runs"))"
            case "$KUBERNETES_EXEC_INFO" in *ExecCredential*) ;; *) echo "no exec info" >&2; exit 3;; esac
            echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"'"$PLUGIN_TOKEN"'","expirationTimestamp":"\(expiry)"}}'

            """, mode: 0o700)
            try dir.write("config", """
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster:
                server: \(e.url)
            users:
            - name: u
              user:
                exec:
                  apiVersion: client.authentication.k8s.io/v1
                  command: ./plugin.sh
                  env:
                  - name: PLUGIN_TOKEN
                    value: \(adminToken)
                  interactiveMode: Never
            contexts:
            - name: ctx
              context: {cluster: c, user: u}
            current-context: ctx

            """)
            let c = KubeClient(config: try KubeConfigLoader.load(kubeconfigPath: dir.file("config")))
            for _ in 0..<3 { _ = try await c.list(.namespaces) }
            let runs = String(decoding: try dir.bytes("runs"), as: UTF8.self).split(separator: "\n").count
            #expect(runs == expectedRuns, "expiry \(expiry)")
        }
    }

    /// Requests that start together while there is no token wait for one plugin run (a controller's workers and
    /// informers all need a token at once when it expires).
    @Test func concurrentRequestsRunThePluginOnce() async throws {
        let dir = try TempDir()
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        try dir.write("plugin.sh", """
            #!/bin/sh
            echo run >> "\(dir.file("runs"))"
            sleep 0.3
            echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"\(adminToken)","expirationTimestamp":"2999-01-01T00:00:00Z"}}'

            """, mode: 0o700)
        let c = KubeClient(config: KubeConfig(server: e.url, credentials: .exec(try execPlugin(dir.file("plugin.sh")))))
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 { group.addTask { try await c.list(.namespaces).items.count } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(counts == Array(repeating: 4, count: 8))
        let runs = String(decoding: try dir.bytes("runs"), as: UTF8.self).split(separator: "\n").count
        #expect(runs == 1, "the plugin ran \(runs) times for 8 concurrent requests")
    }

    /// A plugin that writes more to stderr than a pipe holds, with a fractional-second expiry, still works.
    @Test func chattyExecPluginDoesNotDeadlock() async throws {
        let dir = try TempDir()
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        try dir.write("plugin.sh", """
            #!/bin/sh
            head -c 300000 /dev/zero | tr '\\0' x >&2
            echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"\(adminToken)","expirationTimestamp":"2999-01-01T00:00:00.123456Z"}}'

            """, mode: 0o700)
        let config = KubeConfig(server: e.url, credentials: .exec(try execPlugin(dir.file("plugin.sh"))))
        let list = try await KubeClient(config: config).list(.namespaces)
        #expect(list.items.count == 4)
    }

    @Test func failingExecPluginIsReportedWithItsStderr() async throws {
        let dir = try TempDir()
        try dir.write("plugin.sh", "#!/bin/sh\necho 'login required' >&2\nexit 7\n", mode: 0o700)
        let config = KubeConfig(server: "http://127.0.0.1:9", credentials: .exec(try execPlugin(dir.file("plugin.sh"))))
        do {
            _ = try await KubeClient(config: config).list(.namespaces)
            Issue.record("a failing plugin was ignored")
        } catch {
            #expect(error.message == "exec plugin \(dir.file("plugin.sh")) exited with status 7: login required")
        }
    }

    /// The timeout kills the plugin's whole process group: a child it started (holding stdout open) cannot keep the
    /// client waiting.
    @Test func execPluginTimeoutKillsTheChildrenToo() async throws {
        let dir = try TempDir()
        try dir.write("plugin.sh", "#!/bin/sh\nsleep 149.123; echo '{}'\n", mode: 0o700)
        var plugin = try execPlugin(dir.file("plugin.sh"))
        plugin.timeout = .milliseconds(500)
        let start = ContinuousClock.now
        do {
            _ = try await KubeClient(config: KubeConfig(server: "http://127.0.0.1:9", credentials: .exec(plugin))).list(.namespaces)
            Issue.record("a hanging plugin produced a token")
        } catch {
            #expect(error.message.contains("no answer within"), "\(error.message)")
        }
        #expect(ContinuousClock.now - start < .seconds(10), "the client waited for the plugin's child")
        try await Task.sleep(for: .milliseconds(200))
        let pgrep = Process()
        pgrep.executableURL = URL(fileURLWithPath: "/usr/bin/pgrep")
        pgrep.arguments = ["-f", "sleep 149.123"]
        pgrep.standardOutput = FileHandle.nullDevice
        try pgrep.run()
        pgrep.waitUntilExit()
        #expect(pgrep.terminationStatus == 1, "the plugin's child survived")
    }

    /// A plugin printing without end is stopped at the output cap; its stderr shows as one bounded line with
    /// anything token-like redacted.
    @Test func execPluginOutputAndStderrAreBounded() async throws {
        let dir = try TempDir()
        try dir.write("flood.sh", "#!/bin/sh\nexec cat /dev/zero\n", mode: 0o700)
        do {
            _ = try await KubeClient(config: KubeConfig(server: "http://127.0.0.1:9", credentials: .exec(try execPlugin(dir.file("flood.sh"))))).list(.namespaces)
            Issue.record("an endless plugin produced a token")
        } catch let error as KubeError {
            #expect(error.message.contains("output larger than 1024 KiB"), "\(error.message)")
        }
        let secret = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
        try dir.write("leak.sh", "#!/bin/sh\necho \"refresh failed for token \(secret) at $(printf 'x%.0s' $(seq 300))\" >&2\nexit 3\n", mode: 0o700)
        do {
            _ = try await KubeClient(config: KubeConfig(server: "http://127.0.0.1:9", credentials: .exec(try execPlugin(dir.file("leak.sh"))))).list(.namespaces)
            Issue.record("a failing plugin was ignored")
        } catch {
            let error = try #require(error as? KubeError)
            #expect(!error.message.contains(secret), "the token from stderr is in the message")
            #expect(error.message.contains("refresh failed for token [redacted]"), "\(error.message)")
            #expect(error.message.count < 400, "\(error.message.count) characters")
        }
    }

    func execPlugin(_ path: String) throws -> ExecPlugin {
        let dir = try TempDir()
        try dir.write("config", "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://x'}\nusers:\n- name: u\n  user:\n    exec: {command: \(path), apiVersion: client.authentication.k8s.io/v1}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n")
        guard case .exec(let p) = try KubeConfigLoader.load(kubeconfigPath: dir.file("config")).credentials else { throw KubeConfigError("no exec") }
        return p
    }

    @Test func tokenFileIsReReadWhenItRotates() async throws {
        let dir = try TempDir()
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        try dir.write("token", "stale-token\n")
        let c = KubeClient(config: KubeConfig(server: e.url, credentials: .tokenFile(dir.file("token"))))
        await #expect(throws: KubeError.self) { _ = try await c.list(.namespaces) }
        try await Task.sleep(for: .milliseconds(20))
        try dir.write("token.new", adminToken + "\n")
        _ = rename(dir.file("token.new"), dir.file("token"))
        let list = try await c.list(.namespaces)
        #expect(list.items.count == 4)
    }

    /// The kubelet's projected token layout: `token -> ..data/token`, `..data -> ..TIMESTAMP`; rotation swaps `..data`.
    @Test func projectedTokenIsReReadWhenTheSymlinkSwaps() async throws {
        let dir = try TempDir()
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        try FileManager.default.createDirectory(atPath: dir.file("..2026_11_26_1"), withIntermediateDirectories: true)
        try dir.write("..2026_11_26_1/token", "stale-token\n")
        try FileManager.default.createSymbolicLink(atPath: dir.file("..data"), withDestinationPath: "..2026_11_26_1")
        try FileManager.default.createSymbolicLink(atPath: dir.file("token"), withDestinationPath: "..data/token")
        let c = KubeClient(config: KubeConfig(server: e.url, credentials: .tokenFile(dir.file("token"))))
        await #expect(throws: KubeError.self) { _ = try await c.list(.namespaces) }
        // Rotate as the kubelet does: a new timestamped directory, then an atomic swap of `..data`.
        try FileManager.default.createDirectory(atPath: dir.file("..2026_11_26_2"), withIntermediateDirectories: true)
        try dir.write("..2026_11_26_2/token", adminToken + "\n")
        try FileManager.default.createSymbolicLink(atPath: dir.file("..data_tmp"), withDestinationPath: "..2026_11_26_2")
        _ = rename(dir.file("..data_tmp"), dir.file("..data"))
        let list = try await c.list(.namespaces)
        #expect(list.items.count == 4)
    }

    @Test func inClusterConfiguration() async throws {
        let dir = try TempDir()
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        try dir.write("token", adminToken)
        try dir.write("namespace", "kube-public")
        let port = String(e.port)
        let environment = ["HOME": dir.path, "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port]
        // Without the service account CA there is no in-cluster configuration (no fallback to the system bundle).
        #expect(throws: KubeConfigError.self) { try KubeConfigLoader.inCluster(environment: environment, root: dir.path) }
        try dir.write("ca.crt", "-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n")
        var config = try KubeConfigLoader.load(environment: environment, inClusterRoot: dir.path)
        #expect(config.transport.caPEM != nil)
        #expect(config.origin == "in-cluster")
        #expect(config.namespace == "kube-public")
        #expect(config.server == "https://127.0.0.1:\(port)")
        config.server = e.url  // the emulator here speaks plain HTTP
        let sa = try await KubeClient(config: config).get(.serviceAccounts, name: "default")
        #expect(sa["metadata"]?["namespace"]?.stringValue == "kube-public")
    }

    @Test func proxyURLFromKubeconfigIsUsed() async throws {
        // The emulator accepts absolute-form requests, as an HTTP proxy receives them; the cluster's own host
        // does not resolve, so success means the request went through the proxy.
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let dir = try TempDir()
        try dir.write("config", "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://kubernetes.invalid:6443\n    proxy-url: \(e.url)\nusers:\n- name: u\n  user: {token: \(adminToken)}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n")
        let config = try KubeConfigLoader.load(kubeconfigPath: dir.file("config"))
        #expect(config.transport.proxyURL == e.url)
        let list = try await KubeClient(config: config).list(.namespaces)
        #expect(list.items.count == 4)
    }
}

extension CredentialTests {
    @Test func proxyEnvironmentVariablesAndNoProxy() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let dir = try TempDir()
        try dir.write("config", "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://kubernetes.invalid:6443\nusers:\n- name: u\n  user: {token: \(adminToken)}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n")
        let viaProxy = try KubeConfigLoader.load(kubeconfigPath: dir.file("config"), environment: ["http_proxy": e.url])
        #expect(viaProxy.transport.proxyURL == e.url)
        #expect(try await KubeClient(config: viaProxy).list(.namespaces).items.count == 4)

        var retry = RetryPolicy()
        retry.maxAttempts = 1
        let bypass = try KubeConfigLoader.load(kubeconfigPath: dir.file("config"), environment: ["HTTP_PROXY": e.url, "NO_PROXY": "kubernetes.invalid"])
        await #expect(throws: KubeError.self) { _ = try await KubeClient(config: bypass, retry: retry).list(.namespaces) }
        let none = try KubeConfigLoader.load(kubeconfigPath: dir.file("config"), environment: [:])
        #expect(none.transport.proxyURL == "")
        await #expect(throws: KubeError.self) { _ = try await KubeClient(config: none, retry: retry).list(.namespaces) }
    }
}

@Suite struct KubeconfigTests {
    @Test func kubeconfigListIsMergedFirstWins() throws {
        let dir = try TempDir()
        try dir.write("a", """
        apiVersion: v1
        kind: Config
        current-context: first
        contexts:
        - name: first
          context: {cluster: one, user: alice, namespace: team-a}
        clusters:
        - name: one
          cluster: {server: "https://one.example:6443", insecure-skip-tls-verify: true}
        users:
        - name: alice
          user: {tokenFile: tokens/alice}

        """)
        try dir.write("b", """
        apiVersion: v1
        kind: Config
        current-context: second
        contexts:
        - name: second
          context: {cluster: two, user: bob}
        - name: first
          context: {cluster: two, user: bob}
        clusters:
        - name: two
          cluster: {server: "https://two.example:6443", certificate-authority-data: "\(Base64.encode(Array("CA PEM".utf8)))"}
        - name: one
          cluster: {server: "https://ignored.example"}
        users:
        - name: bob
          user: {client-certificate-data: "\(Base64.encode(Array("CERT".utf8)))", client-key-data: "\(Base64.encode(Array("KEY".utf8)))"}

        """)
        let env = ["KUBECONFIG": dir.file("a") + ":" + dir.file("missing") + ":" + dir.file("b"), "HOME": dir.path]
        let first = try KubeConfigLoader.load(environment: env)
        #expect(first.server == "https://one.example:6443")
        #expect(first.namespace == "team-a")
        #expect(first.transport.insecureSkipVerify)
        guard case .tokenFile(let path) = first.credentials else { Issue.record("expected a token file"); return }
        #expect(path == dir.file("tokens/alice"))

        let second = try KubeConfigLoader.load(context: "second", namespace: "override", environment: env)
        #expect(second.server == "https://two.example:6443")
        #expect(second.namespace == "override")
        #expect(second.transport.caPEM == Array("CA PEM".utf8))
        #expect(second.transport.clientCertificatePEM == Array("CERT".utf8))
        #expect(second.transport.clientKeyPEM == Array("KEY".utf8))

        #expect(throws: KubeConfigError.self) { try KubeConfigLoader.load(context: "nope", environment: env) }
        do { _ = try KubeConfigLoader.load(context: "nope", environment: env) } catch {
            #expect(error.message.hasSuffix("context \"nope\" not found"))
        }
    }

    @Test func noConfigurationSaysWhyEachPlaceFailed() throws {
        do {
            _ = try KubeConfigLoader.load(environment: ["HOME": "/nonexistent-home", "KUBECONFIG": "/nonexistent/kc"], inClusterRoot: "/nonexistent")
            Issue.record("loaded a configuration from nowhere")
        } catch {
            #expect(error.message == "no Kubernetes configuration found: KUBECONFIG=/nonexistent/kc: no such file; /nonexistent-home/.kube/config: no such file; in-cluster: KUBERNETES_SERVICE_HOST is not set")
        }
    }

    @Test func badBase64InKubeconfigNamesTheField() throws {
        let dir = try TempDir()
        try dir.write("c", "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://x', certificate-authority-data: '***'}\ncontexts:\n- name: x\n  context: {cluster: c}\ncurrent-context: x\n")
        do {
            _ = try KubeConfigLoader.load(kubeconfigPath: dir.file("c"))
            Issue.record("bad base64 accepted")
        } catch {
            #expect(error.message == "cluster c: certificate-authority-data is not valid base64")
        }
    }
}
