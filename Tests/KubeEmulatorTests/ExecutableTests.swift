import DynSecretCore
import Foundation
import Testing

/// The `kube-emulator` binary built next to this test bundle.
let emulatorBinary: String? = {
    guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("kube-emulator").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}()

@Suite(.enabled(if: emulatorBinary != nil && kubectlBinary != nil && openssl != nil, "needs the kube-emulator binary, kubectl and openssl"))
struct ExecutableTests {
    @Test func readyLineKubeconfigTokensAndCounters() async throws {
        let dir = try TempDir()
        let pki = try await TestPKI(dir)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(emulatorBinary))
        p.arguments = ["--port", "0", "--kubeconfig-out", dir.file("kc"), "--token", "ops:ops-token", "--token", "viewer:viewer-token=get,list,watch/secrets",
                       "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--ca-cert", pki.caCert,
                       "--counters-file", dir.file("counters.json")]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { kill(p.processIdentifier, SIGKILL) }
        // Exactly one line when ready.
        let line: String = await withCheckedContinuation { cont in
            Thread {
                var bytes: [UInt8] = []
                while let b = try? out.fileHandleForReading.read(upToCount: 1), let c = b.first, c != 0x0A { bytes.append(c) }
                cont.resume(returning: String(decoding: bytes, as: UTF8.self))
            }.start()
        }
        #expect(line.hasPrefix("kube-emulator ready https://127.0.0.1:"))
        let attributes = try FileManager.default.attributesOfItem(atPath: dir.file("kc"))
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(dir.read("kc").contains("token: ops-token"))

        let kubectl = try #require(kubectlBinary)
        let env = ["HOME": dir.path]
        var r = try await run(kubectl, ["--kubeconfig", dir.file("kc"), "create", "secret", "generic", "one", "--from-literal=a=b"], env: env)
        #expect(r.code == 0, "\(r.stderr)")
        r = try await run(kubectl, ["--kubeconfig", dir.file("kc"), "create", "secret", "generic", "two", "--from-literal=a=b"], env: env)
        #expect(r.code == 0, "\(r.stderr)")
        // The viewer may read secrets but not namespaces.
        let viewer = dir.read("kc").replacingOccurrences(of: "token: ops-token", with: "token: viewer-token")
        try dir.write("viewer", viewer)
        r = try await run(kubectl, ["--kubeconfig", dir.file("viewer"), "get", "secrets", "-o", "name"], env: env)
        #expect(r.stdout == "secret/one\nsecret/two\n", "\(r.stderr)")
        r = try await run(kubectl, ["--kubeconfig", dir.file("viewer"), "get", "namespaces"], env: env)
        #expect(r.code == 1)
        #expect(r.stderr.contains("namespaces is forbidden: User \"viewer\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"))

        r = try await run(kubectl, ["--kubeconfig", dir.file("kc"), "get", "--raw", "/emulator/counters"], env: env)
        let counters = try JSONParser.parse(r.stdout)
        #expect(counters["create"] == .number("2"))
        #expect(counters["ops create"] == .number("2"))
        #expect(counters["viewer list"] == .number("2"))
        #expect(counters["create secrets"] == .number("2"))
        // The counters file is rewritten every second.
        let deadline = ContinuousClock.now + .seconds(5)
        var fromFile: JSONValue?
        while ContinuousClock.now < deadline {
            if let v = try? JSONParser.parse(dir.read("counters.json")), v["create"] == .number("2") { fromFile = v; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(fromFile?["ops create"] == .number("2"))
    }

    @Test func badOptionsExitWithUsageError() async throws {
        let r = try await run(try #require(emulatorBinary), ["--tls-cert", "/nonexistent.crt"])
        #expect(r.code == 2)
        #expect(r.stderr == "error: --tls-cert and --tls-key must be given together\n")
        let r2 = try await run(try #require(emulatorBinary), ["--host", "0.0.0.0"])
        #expect(r2.code == 2)
        #expect(r2.stderr == "error: the emulator listens on loopback only (127.0.0.1 or ::1), not 0.0.0.0\n")
    }
}
