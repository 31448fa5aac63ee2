import DynSecretCore
import DynSecretKube
import Foundation
import Testing

let python3Path: String? = ["/root/.pyenv/shims/python3", "/usr/local/bin/python3", "/usr/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// Whether `python3` can import `modules`.
func pythonHas(_ modules: String) -> Bool {
    guard let python3Path else { return false }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python3Path)
    p.arguments = ["-c", "import \(modules)"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}

let hasMoto = pythonHas("moto.server, boto3")
let hasPyJWT = pythonHas("jwt, cryptography")

/// A peer process of `Peers/` (python3): started with `args`, its first stdout line read, stopped by closing stdin.
final class PythonPeer: Sendable {
    let process: Process
    let firstLine: String
    private let input: Pipe

    init(_ script: String, _ args: [String] = []) async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(python3Path))
        p.arguments = [URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/\(script)").path] + args
        let out = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = input
        try p.run()
        let handle = out.fileHandleForReading
        firstLine = await withCheckedContinuation { cont in
            Thread {
                var bytes: [UInt8] = []
                while let c = try? handle.read(upToCount: 1), let b = c.first, b != 0x0A { bytes.append(b) }
                cont.resume(returning: String(decoding: bytes, as: UTF8.self))
            }.start()
        }
        process = p
        self.input = input
        guard !firstLine.isEmpty else { throw KubeConfigError("\(script) did not start") }
    }

    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// The AWS credential chain, SigV4 and ECR `GetAuthorizationToken` against moto's server mode with its signature and
/// IAM checks on; container credentials and IMDSv2 against loopback doubles of their documented contracts; Google
/// service-account JWTs verified by PyJWT, workload identity federation and the metadata server.
@Suite(.serialized) struct CloudCredentialTests {
    static let registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    static let canary = "CANARY-cloud-4b1e-never-print"

    struct Moto {
        let peer: PythonPeer
        let endpoint: String
        let minter: (String, String)
        let nobody: (String, String)
        let roleArn: String

        init() async throws {
            peer = try await PythonPeer("moto_peer.py")
            let v = try JSONParser.parse(Array(peer.firstLine.utf8))
            guard case .number(let port)? = v["port"] else { throw KubeConfigError("moto_peer.py: no port") }
            endpoint = "http://127.0.0.1:\(port)"
            func pair(_ k: String) -> (String, String) { (v[k]!.arrayValue![0].stringValue!, v[k]!.arrayValue![1].stringValue!) }
            minter = pair("minter")
            nobody = pair("nobody")
            roleArn = v["roleArn"]!.stringValue!
        }

        /// Lets the next `n` requests through unchecked (moto's runtime control of INITIAL_NO_AUTH_ACTION_COUNT).
        func openWindow(_ n: Int) async throws {
            let r = try await CurlTransport().send(HTTPRequest(method: "POST", url: endpoint + "/moto-api/reset-auth",
                                                               headers: [("Content-Type", "text/plain")], body: Array("\(n)".utf8)))
            #expect(r.status == 200)
        }
    }

    /// An environment with nothing of the host's: no IMDS (never 169.254.169.254 from a test), files under `dir`.
    static func env(_ dir: TempDir, _ extra: [String: String]) -> [String: String] {
        ["HOME": dir.path, "AWS_EC2_METADATA_DISABLED": "true"].merging(extra) { $1 }
    }

    static func ecr(registryIDs: [String] = []) -> MintedCredentialSource {
        MintedCredentialSource(name: "ecr", provider: .ecr(.init(region: "us-east-1", registryIDs: registryIDs)))
    }

    @Test(.enabled(if: hasMoto, "needs moto[server] and boto3"))
    func ecrFromEnvironmentKeysSharedFilesAndWebIdentity() async throws {
        let moto = try await Moto()
        defer { moto.peer.stop() }
        let dir = try TempDir()
        // Environment keys; the ECR endpoint from AWS_ENDPOINT_URL_ECR.
        var m = try await Self.ecr().mint(environment: Self.env(dir, [
            "AWS_ACCESS_KEY_ID": moto.minter.0, "AWS_SECRET_ACCESS_KEY": moto.minter.1, "AWS_ENDPOINT_URL_ECR": moto.endpoint,
        ]))
        #expect(m.auths == [Self.registry: RegistryCredential(username: "AWS", password: "123456789012-auth-token")])
        #expect(m.origin == "environment")
        // moto answers a fixed expiresAt (2015-01-01): a lifetime already past, which the refresh rule bounds.
        #expect(m.lifetime < .zero)
        // Several registries: one credential each, keyed by the proxyEndpoint host.
        m = try await Self.ecr(registryIDs: ["123456789012", "111122223333"]).mint(environment: Self.env(dir, [
            "AWS_ACCESS_KEY_ID": moto.minter.0, "AWS_SECRET_ACCESS_KEY": moto.minter.1, "AWS_ENDPOINT_URL": moto.endpoint,
        ]))
        #expect(m.auths.keys.sorted() == ["111122223333.dkr.ecr.us-east-1.amazonaws.com", Self.registry])
        #expect(m.auths["111122223333.dkr.ecr.us-east-1.amazonaws.com"]?.password == "111122223333-auth-token")

        // Shared files: the profile named by AWS_PROFILE, the credentials file before the config file.
        try dir.write("credentials", "[default]\naws_access_key_id = AKIAWRONGWRONGWRONG1\naws_secret_access_key = wrong\n\n[ci]\naws_access_key_id = \(moto.minter.0)\naws_secret_access_key = \(moto.minter.1)\n")
        try dir.write("config", "[profile ci]\naws_access_key_id = \(moto.nobody.0)\naws_secret_access_key = \(moto.nobody.1)\nregion = us-east-1\n")
        m = try await Self.ecr().mint(environment: Self.env(dir, [
            "AWS_PROFILE": "ci", "AWS_SHARED_CREDENTIALS_FILE": dir.file("credentials"), "AWS_CONFIG_FILE": dir.file("config"), "AWS_ENDPOINT_URL": moto.endpoint,
        ]))
        #expect(m.origin == "profile ci" && m.auths[Self.registry] != nil)

        // Web identity (EKS IRSA): STS AssumeRoleWithWebIdentity, unsigned as in the SDKs (moto needs a window of one
        // request for an unsigned call), then ECR signed with the session credentials and the role's policy checked.
        try dir.write("token", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZHluc2VjcmV0In0.c2ln")
        let irsa = Self.env(dir, ["AWS_ROLE_ARN": moto.roleArn, "AWS_WEB_IDENTITY_TOKEN_FILE": dir.file("token"), "AWS_ENDPOINT_URL": moto.endpoint,
                                  "AWS_ROLE_SESSION_NAME": "dynsecret-test"])
        try await moto.openWindow(1)
        m = try await Self.ecr().mint(environment: irsa)
        #expect(m.origin == "web identity (AWS_ROLE_ARN)" && m.auths[Self.registry]?.username == "AWS")
        // The token file is read again on every mint (a projected token rotates): gone, the mint says so.
        try FileManager.default.removeItem(atPath: dir.file("token"))
        await #expect(throws: KubeError.self) { try await Self.ecr().mint(environment: irsa) }
        do { _ = try await Self.ecr().mint(environment: irsa) } catch { #expect(error.message.contains("cannot read the token file")) }
        // Environment keys come first in the chain.
        try dir.write("token", "x.y.z")
        m = try await Self.ecr().mint(environment: irsa.merging(["AWS_ACCESS_KEY_ID": moto.minter.0, "AWS_SECRET_ACCESS_KEY": moto.minter.1]) { $1 })
        #expect(m.origin == "environment")
    }

    @Test(.enabled(if: hasMoto, "needs moto[server] and boto3"))
    func motoChecksRefuseAWrongKeyAndAMissingPermissionWithTheirOwnErrors() async throws {
        let moto = try await Moto()
        defer { moto.peer.stop() }
        let dir = try TempDir()
        let wrongSecret = moto.minter.1.dropLast(4) + "XXXX"
        do {
            _ = try await Self.ecr().mint(environment: Self.env(dir, [
                "AWS_ACCESS_KEY_ID": moto.minter.0, "AWS_SECRET_ACCESS_KEY": String(wrongSecret), "AWS_ENDPOINT_URL_ECR": moto.endpoint,
            ]))
            Issue.record("a wrong secret key was accepted")
        } catch {
            #expect(error.message.contains("HTTP 403 SignatureDoesNotMatch"), "\(error.message)")
            #expect(error.message.hasPrefix("credential ecr: ECR GetAuthorizationToken"))
            #expect(!error.message.contains(wrongSecret) && !error.message.contains("Signature="), "no key or signature in an error")
        }
        do {
            _ = try await Self.ecr().mint(environment: Self.env(dir, [
                "AWS_ACCESS_KEY_ID": moto.nobody.0, "AWS_SECRET_ACCESS_KEY": moto.nobody.1, "AWS_ENDPOINT_URL_ECR": moto.endpoint,
            ]))
            Issue.record("a user without ecr:GetAuthorizationToken got a token")
        } catch {
            #expect(error.message.contains("HTTP 403 AccessDenied") && error.message.contains("not authorized to perform: ecr:GetAuthorizationToken"), "\(error.message)")
            #expect(!error.message.contains(moto.nobody.1))
        }
        // Session credentials whose token is wrong: refused.
        do {
            _ = try await Self.ecr().mint(environment: Self.env(dir, [
                "AWS_ACCESS_KEY_ID": moto.minter.0, "AWS_SECRET_ACCESS_KEY": moto.minter.1, "AWS_SESSION_TOKEN": Self.canary, "AWS_ENDPOINT_URL_ECR": moto.endpoint,
            ]))
            Issue.record("a bogus session token was accepted")
        } catch {
            #expect(error.message.contains("InvalidClientTokenId") && !error.message.contains(Self.canary), "\(error.message)")
        }
        // Nothing to sign with.
        do {
            _ = try await Self.ecr().mint(environment: Self.env(dir, [:]))
            Issue.record("minted without credentials")
        } catch {
            #expect(error.message.contains("AWS credentials: none found"), "\(error.message)")
        }
    }

    @Test(.enabled(if: hasMoto, "needs moto[server] and boto3"))
    func containerCredentialsAndIMDSv2() async throws {
        let moto = try await Moto()
        defer { moto.peer.stop() }
        let dir = try TempDir()
        // The doubles hand out the minter's keys (as EKS Pod Identity or an instance profile would); moto checks them.
        try dir.write("creds.json", #"{"aws": ["\#(moto.minter.0)", "\#(moto.minter.1)", null], "google": "unused"}"#)
        try dir.write("pod-identity-token", "eks-pod-identity-\(UUID().uuidString)\n")
        let token = try String(contentsOfFile: dir.file("pod-identity-token"), encoding: .utf8).trimmingCharacters(in: .newlines)
        let peer = try await PythonPeer("metadata_peer.py", [dir.file("creds.json"), token, dir.file("requests.log")])
        defer { peer.stop() }
        let base = "http://127.0.0.1:\(peer.firstLine)"
        var m = try await Self.ecr().mint(environment: Self.env(dir, [
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": base + "/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": dir.file("pod-identity-token"),
            "AWS_ENDPOINT_URL_ECR": moto.endpoint,
        ]))
        #expect(m.origin == "container" && m.auths[Self.registry] != nil)
        // A wrong token: the double's 403, with its code.
        try dir.write("pod-identity-token", "rotated-away")
        do {
            _ = try await Self.ecr().mint(environment: Self.env(dir, [
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": base + "/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": dir.file("pod-identity-token"),
                "AWS_ENDPOINT_URL_ECR": moto.endpoint,
            ]))
            Issue.record("a wrong container token was accepted")
        } catch {
            #expect(error.message.contains("AWS container credentials: HTTP 403 AccessDenied"), "\(error.message)")
        }
        // A plain-http full URI to anything but loopback or the container address is refused before any request.
        do {
            _ = try await Self.ecr().mint(environment: Self.env(dir, ["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://credentials.example.test/v1"]))
            Issue.record("accepted a plain-http credentials URI")
        } catch {
            #expect(error.message.contains("must be https"))
        }
        // IMDSv2: session token, role, credentials (IMDS is the chain's last link, so enable it, on loopback).
        var env = Self.env(dir, ["AWS_EC2_METADATA_SERVICE_ENDPOINT": base, "AWS_ENDPOINT_URL_ECR": moto.endpoint])
        env["AWS_EC2_METADATA_DISABLED"] = nil
        m = try await Self.ecr().mint(environment: env)
        #expect(m.origin == "IMDS" && m.auths[Self.registry] != nil)
        let log = try String(contentsOfFile: dir.file("requests.log"), encoding: .utf8).split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
        let imds = log.filter { $0["path"]?.stringValue?.hasPrefix("/latest/") == true }
        #expect(imds.map { "\($0["method"]!.stringValue!) \($0["path"]!.stringValue!)" } == [
            "PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/", "GET /latest/meta-data/iam/security-credentials/node-role",
        ])
        #expect(imds.dropFirst().allSatisfy { $0["imdsToken"] == .bool(true) }, "every IMDS read carries the session token")
        // Nothing anywhere and no IMDS answering (port 1 on loopback is closed): the error says what was tried.
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:1"
        do {
            _ = try await Self.ecr().mint(environment: env)
            Issue.record("minted without an IMDS")
        } catch {
            #expect(error.message.contains("AWS credentials: none found (environment, web identity, shared files, container credentials), and IMDS: "), "\(error.message)")
        }
    }

    @Test func endpointsAsTheSDKsResolveThem() {
        let e = AWS.Environment(["AWS_ENDPOINT_URL": "http://all", "AWS_ENDPOINT_URL_ECR": "http://ecr"])
        #expect(AWS.endpoint("ECR", region: "us-east-1", e) == "http://ecr")
        #expect(AWS.endpoint("STS", region: "us-east-1", e) == "http://all")
        #expect(AWS.endpoint("ECR", region: "eu-west-1", AWS.Environment([:])) == "https://api.ecr.eu-west-1.amazonaws.com")
        #expect(AWS.endpoint("STS", region: "cn-north-1", AWS.Environment([:])) == "https://sts.cn-north-1.amazonaws.com.cn")
        let ignored = AWS.Environment(["AWS_ENDPOINT_URL_ECR": "http://ecr", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"])
        #expect(AWS.endpoint("ECR", region: "us-east-1", ignored) == "https://api.ecr.us-east-1.amazonaws.com")
    }

    // MARK: Google

    static let google = MintedCredentialSource(name: "gar", provider: .google(.init(registries: ["us-docker.pkg.dev", "gcr.io"])))

    @Test(.enabled(if: hasPyJWT, "needs PyJWT and cryptography"))
    func googleServiceAccountKeyWorkloadIdentityFederationAndTheMetadataServer() async throws {
        let dir = try TempDir()
        let access = "ya29.\(Self.canary)"
        try dir.write("subject-token", "eyJhbGciOiJSUzI1NiJ9.k8s-projected-token.sig\n")
        let peer = try await PythonPeer("google_peer.py", [dir.file("sa.json"), dir.file("external.json"), dir.file("subject-token"), access])
        defer { peer.stop() }
        // A service-account key: the JWT bearer grant, checked by PyJWT (signature, iss, aud, scope, iat/exp, kid).
        var m = try await Self.google.mint(environment: Self.env(dir, ["GOOGLE_APPLICATION_CREDENTIALS": dir.file("sa.json")]))
        #expect(m.auths == ["us-docker.pkg.dev": RegistryCredential(username: "oauth2accesstoken", password: access),
                            "gcr.io": RegistryCredential(username: "oauth2accesstoken", password: access)])
        #expect(m.lifetime == .seconds(3599) && m.origin == "service account puller@project.iam.gserviceaccount.com")
        // Another key than the server's (made with the openssl CLI): PyJWT refuses the signature; the error says so
        // without a value.
        let o = try #require(opensslPath)
        #expect(await sh(o, ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", dir.file("other.pem")]) == 0)
        guard case .object(var file) = try JSONParser.parse(try dir.bytes("sa.json")) else { Issue.record("sa.json"); return }
        file["private_key"] = .string(try String(contentsOfFile: dir.file("other.pem"), encoding: .utf8))
        try dir.write("sa-other-key.json", String(decoding: GoJSONWriter.compact(.object(file)), as: UTF8.self))
        do {
            _ = try await Self.google.mint(environment: Self.env(dir, ["GOOGLE_APPLICATION_CREDENTIALS": dir.file("sa-other-key.json")]))
            Issue.record("a JWT signed with another key was accepted")
        } catch {
            #expect(error.message.contains("Google token endpoint: HTTP 400 invalid_grant: Invalid JWT: InvalidSignatureError"), "\(error.message)")
        }
        file["private_key"] = try JSONParser.parse(try dir.bytes("sa.json"))["private_key"]
        file["private_key_id"] = .string("rotated")
        try dir.write("sa-other-kid.json", String(decoding: GoJSONWriter.compact(.object(file)), as: UTF8.self))
        do {
            _ = try await Self.google.mint(environment: Self.env(dir, ["GOOGLE_APPLICATION_CREDENTIALS": dir.file("sa-other-kid.json")]))
            Issue.record("a JWT with another kid was accepted")
        } catch {
            #expect(error.message.contains("HTTP 400 invalid_grant: Invalid JWT header."), "\(error.message)")
        }
        // Workload identity federation: STS exchange of the subject token, then service account impersonation.
        m = try await Self.google.mint(environment: Self.env(dir, ["GOOGLE_APPLICATION_CREDENTIALS": dir.file("external.json")]))
        #expect(m.auths["gcr.io"]?.password == access && m.origin.hasPrefix("workload identity federation"))
        #expect(m.lifetime > .seconds(3500) && m.lifetime <= .seconds(3600))
        let stats = try JSONParser.parse(try await CurlTransport().send(HTTPRequest(method: "GET", url: "http://127.0.0.1:\(peer.firstLine)/stats")).body)
        #expect(stats["grants"] == .number("1") && stats["exchanges"] == .number("1") && stats["impersonations"] == .number("1"))

        // The metadata server (GKE Workload Identity): Metadata-Flavor both ways.
        try dir.write("creds.json", #"{"aws": ["a", "b", null], "google": "\#(access)"}"#)
        let metadata = try await PythonPeer("metadata_peer.py", [dir.file("creds.json"), "unused", dir.file("requests.log")])
        defer { metadata.stop() }
        m = try await Self.google.mint(environment: Self.env(dir, ["GCE_METADATA_HOST": "127.0.0.1:\(metadata.firstLine)"]))
        #expect(m.origin == "metadata server" && m.auths["us-docker.pkg.dev"]?.password == access && m.lifetime == .seconds(3599))
        let log = try String(contentsOfFile: dir.file("requests.log"), encoding: .utf8)
        #expect(log.contains(#""flavor": "Google""#))
        // The token as printed (interpolated, dumped, described) never shows the value.
        let token = try await GoogleAuth.accessToken(AWS.Environment(Self.env(dir, ["GCE_METADATA_HOST": "127.0.0.1:\(metadata.firstLine)"])), transport: CurlTransport())
        #expect(token.accessToken == access)
        var dumped = ""
        dump(token, to: &dumped)
        for text in ["\(token)", String(reflecting: token), dumped] { #expect(!text.contains(Self.canary) && text.contains("redacted"), "\(text)") }
    }
}
