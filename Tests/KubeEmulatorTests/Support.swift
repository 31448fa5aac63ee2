import DynSecretCore
import Foundation
import KubeEmulator
import Synchronization
import Testing

/// Streams of one finished process.
struct ProcessResult: Sendable {
    var code: Int32
    var stdout: String
    var stderr: String
}

/// Runs an executable on a dedicated thread (never blocking the cooperative pool).
func run(_ path: String, _ args: [String], env: [String: String] = [:], stdin: String? = nil) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { cont in
        let t = Thread {
            do {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: path)
                p.arguments = args
                var e = ProcessInfo.processInfo.environment
                for (k, v) in env { e[k] = v }
                p.environment = e
                let out = Pipe()
                let err = Pipe()
                let inPipe = Pipe()
                p.standardOutput = out
                p.standardError = err
                p.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
                try p.run()
                if let stdin {
                    inPipe.fileHandleForWriting.write(Data(stdin.utf8))
                    try inPipe.fileHandleForWriting.close()
                }
                let errData = Mutex(Data())
                let reader = Thread { errData.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() } }
                reader.start()
                let o = out.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                while reader.isExecuting || !reader.isFinished { usleep(1000) }
                cont.resume(returning: ProcessResult(code: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                                                     stderr: String(decoding: errData.withLock { $0 }, as: UTF8.self)))
            } catch {
                cont.resume(throwing: error)
            }
        }
        t.start()
    }
}

/// The installed kubectl, if any.
let kubectlBinary: String? = ["/usr/local/bin/kubectl", "/usr/bin/kubectl"].first { FileManager.default.isExecutableFile(atPath: $0) }
let openssl: String? = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// A temporary directory, removed on release.
final class TempDir: Sendable {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("kube-emulator-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
    func write(_ name: String, _ text: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: file(name))) }
    func read(_ name: String) -> String { (FileManager.default.contents(atPath: file(name))).map { String(decoding: $0, as: UTF8.self) } ?? "" }
}

/// A test CA and a server certificate for 127.0.0.1 made with the openssl CLI.
struct TestPKI {
    let dir: TempDir
    var caCert: String { dir.file("ca.crt") }
    var caKey: String { dir.file("ca.key") }
    var serverCert: String { dir.file("server.crt") }
    var serverKey: String { dir.file("server.key") }

    init(_ dir: TempDir) async throws {
        self.dir = dir
        let ossl = try #require(openssl)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        var r = try await run(ossl, ["req", "-x509"] + ec + ["-keyout", dir.file("ca.key"), "-out", dir.file("ca.crt"), "-subj", "/CN=dynsecret test CA", "-days", "2"])
        #expect(r.code == 0, "\(r.stderr)")
        try dir.write("ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n")
        r = try await run(ossl, ["req"] + ec + ["-keyout", dir.file("server.key"), "-out", dir.file("server.csr"), "-subj", "/CN=127.0.0.1"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try await run(ossl, ["x509", "-req", "-in", dir.file("server.csr"), "-CA", dir.file("ca.crt"), "-CAkey", dir.file("ca.key"), "-CAcreateserial",
                                 "-out", dir.file("server.crt"), "-days", "2", "-extfile", dir.file("ext.cnf")])
        #expect(r.code == 0, "\(r.stderr)")
    }

    /// Issues a client certificate for `cn` signed by the test CA; returns (cert, key) paths.
    func clientCertificate(_ cn: String) async throws -> (String, String) {
        let ossl = try #require(openssl)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        var r = try await run(ossl, ["req"] + ec + ["-keyout", dir.file("\(cn).key"), "-out", dir.file("\(cn).csr"), "-subj", "/CN=\(cn)"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try await run(ossl, ["x509", "-req", "-in", dir.file("\(cn).csr"), "-CA", caCert, "-CAkey", caKey, "-CAcreateserial",
                                 "-out", dir.file("\(cn).crt"), "-days", "2", "-extfile", dir.file("ext.cnf")])
        #expect(r.code == 0, "\(r.stderr)")
        return (dir.file("\(cn).crt"), dir.file("\(cn).key"))
    }
}

/// An emulator over TLS with tokens, and a kubeconfig for kubectl.
struct KubectlFixture {
    let dir: TempDir
    let pki: TestPKI
    let emulator: KubeEmulator
    let kubeconfig: String

    static let adminToken = "admin-token-0123456789"
    static let readerToken = "reader-token-0123456789"

    init(faults: Faults = Faults()) async throws {
        dir = try TempDir()
        pki = try await TestPKI(dir)
        var options = EmulatorOptions()
        options.tlsCertificatePath = pki.serverCert
        options.tlsKeyPath = pki.serverKey
        options.tokens = [TokenGrant(token: Self.adminToken, user: "admin"),
                          TokenGrant(token: Self.readerToken, user: "reader", verbs: ["get", "list", "watch"])]
        options.faults = faults
        emulator = try await KubeEmulator.start(options)
        let ca = Array(try Data(contentsOf: URL(fileURLWithPath: pki.caCert)))
        kubeconfig = dir.file("kubeconfig")
        try dir.write("kubeconfig", emulator.kubeconfig(token: Self.adminToken, caPEM: ca))
        try dir.write("reader.kubeconfig", emulator.kubeconfig(token: Self.readerToken, caPEM: ca))
        try dir.write("wrong.kubeconfig", emulator.kubeconfig(token: "not-a-valid-token", caPEM: ca))
    }

    /// Runs kubectl against the emulator (own HOME so no discovery cache is shared between tests).
    func kubectl(_ args: [String], stdin: String? = nil, config: String? = nil) async throws -> ProcessResult {
        let path = try #require(kubectlBinary)
        return try await run(path, ["--kubeconfig", config.map { dir.file($0) } ?? kubeconfig] + args,
                             env: ["HOME": dir.path, "KUBECACHEDIR": dir.file("cache")], stdin: stdin)
    }
}
