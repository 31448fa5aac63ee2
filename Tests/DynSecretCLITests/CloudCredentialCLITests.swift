import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// Starts a peer of Tests/DynSecretKubeTests/Peers (python3) with `args`; returns it, its stdin (closing it stops the
/// peer) and the first line it printed.
func startKubeTestPeer(_ script: String, _ args: [String]) throws -> (Process, Pipe, String) {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("DynSecretKubeTests/Peers/\(script)").path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try #require(onPath("python3")))
    p.arguments = [path] + args
    let out = Pipe(), input = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    p.standardInput = input
    try p.run()
    var line: [UInt8] = []
    while let c = try out.fileHandleForReading.read(upToCount: 1), let b = c.first, b != 0x0A { line.append(b) }
    return (p, input, String(decoding: line, as: UTF8.self))
}

/// moto in server mode (Tests/DynSecretKubeTests/Peers/moto_peer.py) with its signature and IAM checks on: the
/// users `minter` (may call ecr:GetAuthorizationToken) and `nobody` (may not).
final class MotoServer: Sendable {
    let process: Process
    let endpoint: String
    let minter: [String]
    let nobody: [String]
    private let input: Pipe

    static let available: Bool = {
        guard let python = onPath("python3") else { return false }
        return (try? runProcess(python, ["-c", "import moto.server, boto3"]).code) == 0
    }()

    init() throws {
        let (p, input, line) = try startKubeTestPeer("moto_peer.py", [])
        let v = try JSONParser.parse(Array(line.utf8))
        guard case .number(let port)? = v["port"] else { throw TestFailure("moto_peer.py did not start") }
        endpoint = "http://127.0.0.1:\(port)"
        minter = v["minter"]?.arrayValue?.compactMap(\.stringValue) ?? []
        nobody = v["nobody"]?.arrayValue?.compactMap(\.stringValue) ?? []
        process = p
        self.input = input
    }

    /// The environment of a process that signs as `user` against this server (and never asks IMDS).
    func environment(_ user: [String], home: String) -> [String: String] {
        ["HOME": home, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": user[0], "AWS_SECRET_ACCESS_KEY": user[1],
         "AWS_ENDPOINT_URL_ECR": endpoint, "AWS_EC2_METADATA_DISABLED": "true"]
    }

    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// `create-registry --from-ecr/--from-google/--from-provider`, `credentials mint`, and the controller minting ECR
/// tokens from moto into 200 namespaces and their default ServiceAccounts.
@Suite(.serialized) struct CloudCredentialCLITests {
    static let registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    static let canary = "CANARY-cloudcli-9e2f-never-print"

    @Test(.enabled(if: MotoServer.available, "needs moto[server] and boto3"))
    func createRegistryFromECRAndCredentialsMint() async throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        let dir = try TempDir()
        let env = moto.environment(moto.minter, home: dir.url.path)
        var r = await dynsecret(["create-registry", "ecr-pull", "-n", "team-a", "--from-ecr", "--region", "us-east-1", "-o", "json"], environment: env)
        #expect(r.code == 0, "\(r.stderr)")
        let secret = try Secret.decode(try JSONParser.parse(r.stdout)).secret
        #expect(secret.type == SecretType.dockerConfigJSON && secret.metadata.namespace == "team-a")
        let entries = try #require(try PullSecret.entries(of: secret))
        #expect(entries.map(\.key) == [Self.registry] && entries[0].credential == RegistryCredential(username: "AWS", password: "123456789012-auth-token"))
        #expect(r.stderr.contains("minted \(Self.registry) (environment), expires 2015-01-01T00:00:00Z"), "\(r.stderr)")
        #expect(!r.stderr.contains("auth-token") && !r.stderr.contains(moto.minter[1]))

        // moto's own refusals, with its codes; nothing printed.
        r = await dynsecret(["create-registry", "ecr-pull", "--from-ecr", "--region", "us-east-1"], environment: moto.environment(moto.nobody, home: dir.url.path))
        #expect(r.code == 2 && r.stdout.isEmpty && r.stderr.contains("--from-ecr: ECR GetAuthorizationToken: HTTP 403 AccessDenied"), "\(r.stderr)")
        r = await dynsecret(["create-registry", "ecr-pull", "--from-ecr", "--region", "us-east-1"], environment: moto.environment([moto.minter[0], Self.canary], home: dir.url.path))
        #expect(r.code == 2 && r.stderr.contains("SignatureDoesNotMatch") && !r.stderr.contains(Self.canary), "\(r.stderr)")
        // Usage.
        for (args, message) in [(["--from-ecr"], "--from-ecr needs --region"), (["--from-google"], "--from-google needs --registry"),
                                (["--from-ecr", "--region", "us-east-1", "--server", "x.io"], "take no --server"),
                                (["--from-ecr", "--region", "us-east-1", "--from-google", "--registry", "gcr.io"], "give one of"),
                                (["--from-provider", "/bin/true"], "--from-provider needs --image"), (["--region", "us-east-1", "--username", "u"], "go with --from-ecr")] {
            r = await dynsecret(["create-registry", "x"] + args, environment: env)
            #expect(r.code == 2 && r.stderr.contains(message), "\(args): \(r.stderr)")
        }

        // credentials mint: registry, username, expiry and origin; never the token.
        let policy = try dir.file("policy.yaml", """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: ecr}
            spec:
              credentials:
              - name: ecr
                ecr: {region: us-east-1, registryIds: ["123456789012", "111122223333"]}
              rules:
              - {name: pull, source: {credentials: [ecr]}, targetName: ecr-pull, targets: {namespaces: [team-a]}}
            """)
        r = await dynsecret(["credentials", "mint", "--policy", policy], environment: env)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ecr (environment)") && r.stdout.contains(Self.registry) && r.stdout.contains("111122223333.dkr.ecr.us-east-1.amazonaws.com"), "\(r.stdout)")
        #expect(r.stdout.contains("2015-01-01T00:00:00Z") && r.stdout.contains("30s"), "an expiry in the past is minted again after 30 s: \(r.stdout)")
        r = await dynsecret(["credentials", "mint", "--policy", policy, "-o", "json"], environment: env)
        let item = try #require(try JSONParser.parse(r.stdout)["credentials"]?.arrayValue?.first)
        #expect(item["provider"]?.stringValue == "ecr" && item["origin"]?.stringValue == "environment" && item["expiresAt"]?.stringValue == "2015-01-01T00:00:00Z")
        #expect(!r.stdout.contains("auth-token"))
    }

    static let hasPyJWT: Bool = {
        guard let python = onPath("python3") else { return false }
        return (try? runProcess(python, ["-c", "import jwt, cryptography"]).code) == 0
    }()

    @Test(.enabled(if: hasPyJWT, "needs PyJWT and cryptography"))
    func createRegistryFromGoogle() async throws {
        let dir = try TempDir()
        let token = "ya29." + Self.canary
        _ = try dir.file("subject", "unused")
        let (p, input, _) = try startKubeTestPeer("google_peer.py", [dir.url.appendingPathComponent("sa.json").path, dir.url.appendingPathComponent("ext.json").path,
                                                                     dir.url.appendingPathComponent("subject").path, token])
        defer {
            try? input.fileHandleForWriting.close()
            p.waitUntilExit()
        }
        let env = ["HOME": dir.url.path, "GOOGLE_APPLICATION_CREDENTIALS": dir.url.appendingPathComponent("sa.json").path]
        let r = await dynsecret(["create-registry", "gar-pull", "--from-google", "--registry", "us-docker.pkg.dev", "--registry", "gcr.io", "-o", "json"],
                                environment: env)
        #expect(r.code == 0, "\(r.stderr)")
        let entries = try #require(try PullSecret.entries(of: try Secret.decode(try JSONParser.parse(r.stdout)).secret))
        #expect(Set(entries.map(\.key)) == ["us-docker.pkg.dev", "gcr.io"])
        #expect(entries.allSatisfy { $0.credential == RegistryCredential(username: "oauth2accesstoken", password: token) })
        #expect(r.stderr.contains("(service account puller@project.iam.gserviceaccount.com), expires ") && !r.stderr.contains(Self.canary), "\(r.stderr)")
        let bad = await dynsecret(["create-registry", "gar-pull", "--from-google", "--registry", "https://gcr.io"], environment: env)
        #expect(bad.code == 2 && bad.stderr.contains("--registry \"https://gcr.io\": a registry host name"), "\(bad.stderr)")
    }

    @Test(.enabled(if: dockerRegistryPath != nil && onPath("python3") != nil, "needs docker-registry and python3"))
    func createRegistryFromAProviderPluginLogsInToARealRegistry() async throws {
        let lab = try RegistryLab()
        defer { lab.stopAll() }
        let port = try await lab.startRegistry(auth: .htpasswd(try lab.htpasswd([("minted", Self.canary)])))
        let host = "127.0.0.1:\(port)"
        let plugins = try TempDir()
        let plugin = try CredentialProviderTests.plugin(plugins, "provider", #"""
            req = json.load(sys.stdin)
            print(json.dumps({"kind": "CredentialProviderResponse", "apiVersion": req["apiVersion"], "cacheKeyType": "Registry", "cacheDuration": "1h",
                              "auth": {req["image"].split("/")[0]: {"username": "minted", "password": "\#(Self.canary)"}}}))
            """#)
        var r = await dynsecret(["create-registry", "minted", "--from-provider", plugin, "--image", "\(host)/team/app:1", "--verify"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stderr.contains("verify: ok \(host)"), "\(r.stderr)")
        #expect(!r.stderr.contains(Self.canary))
        let file = try lab.dir.file("minted.yaml", r.stdout)
        r = await dynsecret(["verify", "-f", file])
        #expect(r.code == 0 && r.stdout.contains(host), "\(r.stdout)")
        // A plugin that answers a wrong password: --verify refuses to print.
        let wrong = try CredentialProviderTests.plugin(plugins, "wrong", #"""
            req = json.load(sys.stdin)
            print(json.dumps({"kind": "CredentialProviderResponse", "apiVersion": req["apiVersion"], "cacheKeyType": "Image",
                              "auth": {req["image"].split("/")[0]: {"username": "minted", "password": "nope"}}}))
            """#)
        r = await dynsecret(["create-registry", "minted", "--from-provider", wrong, "--image", "\(host)/team/app:1", "--verify"])
        #expect(r.code == 1 && r.stdout.isEmpty && r.stderr.contains("verify: unauthorized"), "\(r.stderr)")
    }

    @Test(.heavy, .enabled(if: MotoServer.available && dynsecretBinary != nil, "needs moto[server] and the dynsecret binary"))
    func theControllerMintsFromMotoIntoTwoHundredNamespaces() async throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        let dir = try TempDir()
        var options = EmulatorOptions()
        options.tokens = [TokenGrant(token: "admin", user: "admin"), TokenGrant(token: "ctl", user: "controller")]
        let e = try await KubeEmulator.start(options)
        defer { Task { await e.stop() } }
        let c = KubeClient(config: KubeConfig(server: e.url, credentials: .token("admin")))
        let namespaces = (0..<200).map { "gpu-\($0)" }
        try await Fixtures.createNamespaces(c, namespaces, labels: ["pull": "ecr"])
        let policy = try dir.file("policy.yaml", """
            apiVersion: dynsecret.io/v1alpha1
            kind: ReplicationPolicy
            metadata: {name: ecr}
            spec:
              credentials:
              - name: ecr
                ecr: {region: us-east-1}
              rules:
              - name: pull
                source: {credentials: [ecr]}
                targetName: ecr-pull
                targets: {namespaceSelector: {matchLabels: {pull: ecr}}}
                serviceAccounts: [default]
            """)
        let ctl = try ControllerProcess(["--policy", policy, "--kubeconfig", try dir.file("kubeconfig", e.kubeconfig(token: "ctl")),
                                         "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"],
                                        log: dir.url.appendingPathComponent("controller.log").path, environment: moto.environment(moto.minter, home: dir.url.path))
        defer { Task { _ = await ctl.stop() } }
        let metricsPort = try await ctl.port("metrics")
        func replicas() async throws -> [Secret] {
            try await c.list(Secret.self, namespace: nil, options: ListOptions(labelSelector: "dynsecret.io/replica=true")).items
        }
        #expect(try await waitFor(.seconds(60)) { try await replicas().count == namespaces.count } != nil, "\(ctl.log.suffix(2000))")
        for s in try await replicas() {
            let entries = try #require(try PullSecret.entries(of: s))
            #expect(entries.map(\.key) == [Self.registry] && entries[0].credential.username == "AWS" && entries[0].credential.password == "123456789012-auth-token")
        }
        #expect(try await waitFor(.seconds(30)) {
            try await c.list(ServiceAccount.self, namespace: nil).items.filter { $0.metadata.name == "default" && namespaces.contains($0.metadata.namespace ?? "") }
                .allSatisfy { $0.imagePullSecrets == ["ecr-pull"] }
        } != nil)
        let exposition = try httpGet("http://127.0.0.1:\(metricsPort)/metrics").body
        #expect(exposition.contains("dynsecret_credential_refresh_total{credential=\"ecr\",result=\"success\"} 1"), "\(exposition)")
        // moto's expiresAt is fixed in the past: used, reported, and minted again after the bounded interval.
        #expect(ctl.log.contains("credential reported no lifetime"), "\(ctl.log.suffix(2000))")
        let log = ctl.log
        #expect(!log.contains("auth-token") && !log.contains(moto.minter[1]) && !exposition.contains("auth-token"))
        let stop = await ctl.stop()
        #expect(stop.status == 0)
    }
}
