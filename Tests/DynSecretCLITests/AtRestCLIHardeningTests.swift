import DynSecretCore
import Foundation
import Testing
@testable import DynSecretCrypto

#if canImport(Glibc)
import Glibc
#endif

/// A bundle (under `recovery`) holding one Secret per (namespace, name), names taken as given: what an attacker
/// who can write a bundle can put in it.
private func craftedBundle(_ names: [(String, String)], recovery: Keyring) throws -> [UInt8] {
    let ring = try Keyring.generate(now: "t")
    var records: [(RecordLocation, [UInt8], ExpectedContext)] = []
    for (ns, name) in names {
        let context = RecordContext(storeID: "s", namespace: ns, name: name, generation: 1)
        let bytes = try AtRestRecord.seal(RecordPayload(type: "Opaque", data: ["k": Array("v".utf8)]), context: context, keyring: ring, created: 0)
        records.append((RecordLocation(namespace: ns, name: name, uid: "", generation: 1, path: "crafted"), bytes, ExpectedContext()))
    }
    return try AtRestBundle.export(records: records, keyring: ring, passphrase: nil, recovery: recovery, scryptLogN: 17, created: 0,
                                   random: SystemRandomness())
}

private func files(_ dir: String) -> [String] {
    ((try? FileManager.default.subpathsOfDirectory(atPath: dir)) ?? []).sorted()
}

@Suite struct AtRestCLIHardeningTests {
    /// Record names from a bundle cannot escape --out-dir, collide, or overwrite; any bad record means nothing is written.
    @Test func restoreOutDirRefusesHostileNames() async throws {
        let dir = try TempDir()
        let recovery = try Keyring.generate(now: "t")
        let rk = dir.url.appendingPathComponent("recovery.yaml").path
        try recovery.save(path: rk)
        let out = dir.url.appendingPathComponent("out/deeper").path
        let cases: [[(String, String)]] = [
            [("team-a", "ok"), ("../..", "escaped")],
            [("team-a", "ok"), ("team-a", "../../escaped")],
            [("team-a", "ok"), ("a.b", "c"), ("a", "b.c")],
            [("team-a", "ok"), ("Team", "x")],
            [("team-a", "ok"), ("team-a", "bad\u{1b}name")],
        ]
        for (i, names) in cases.enumerated() {
            let bundle = dir.url.appendingPathComponent("b\(i).ksb").path
            try Data(try craftedBundle(names, recovery: recovery)).write(to: URL(fileURLWithPath: bundle))
            let r = await dynsecret(["store", "restore", "--bundle", bundle, "--keyring", rk, "--out-dir", out])
            #expect(r.code == 2, "case \(i): \(r.stderr)")
            #expect(r.stderr.hasPrefix("error: ") && r.stderr.filter { $0 == "\n" }.count == 1, "case \(i): \(r.stderr)")
            #expect(r.stderr.contains("nothing written"), "case \(i): \(r.stderr)")
            #expect(files(dir.url.path).filter { $0.hasSuffix(".yaml") && !$0.hasPrefix("recovery") }.isEmpty, "case \(i): \(files(dir.url.path))")
            #expect(!FileManager.default.fileExists(atPath: dir.url.appendingPathComponent("escaped").path))
        }

        // A good bundle restores; restoring again refuses to replace the files and leaves them as they were.
        let good = dir.url.appendingPathComponent("good.ksb").path
        try Data(try craftedBundle([("team-a", "one"), ("team-b", "two.x")], recovery: recovery)).write(to: URL(fileURLWithPath: good))
        var r = await dynsecret(["store", "restore", "--bundle", good, "--keyring", rk, "--out-dir", out])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(files(out) == ["team-a.one.yaml", "team-b.two.x.yaml"])
        try Data("mine\n".utf8).write(to: URL(fileURLWithPath: out + "/team-b.two.x.yaml"))
        try FileManager.default.removeItem(atPath: out + "/team-a.one.yaml")
        r = await dynsecret(["store", "restore", "--bundle", good, "--keyring", rk, "--out-dir", out])
        #expect(r.code == 2)
        #expect(r.stderr.contains("already exists"), "\(r.stderr)")
        #expect(files(out) == ["team-b.two.x.yaml"])
        #expect(try String(contentsOfFile: out + "/team-b.two.x.yaml", encoding: .utf8) == "mine\n")
    }

    /// `restore --store --namespace ../..` is refused instead of listing outside the store.
    @Test func restoreFromStoreValidatesFilters() async throws {
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("k.yaml").path
        let store = dir.url.appendingPathComponent("store").path
        _ = await dynsecret(["keys", "generate", "--keyring", k])
        var r = await dynsecret(["store", "put", "--store", store, "--keyring", k, "-f", "-"],
                                stdin: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team-a\ndata:\n  k: dg==\n")
        #expect(r.code == 0, "\(r.stderr)")
        for args in [["--namespace", "../.."], ["--namespace", "team-a", "--name", "../../records"], ["--namespace", ".."]] {
            r = await dynsecret(["store", "restore", "--store", store, "--keyring", k] + args)
            #expect(r.code == 2, "\(args): \(r.stderr)")
            #expect(r.stdout.isEmpty)
            #expect(r.stderr.contains("is not a valid Kubernetes name"), "\(args): \(r.stderr)")
        }
    }

    /// A keyring reached through a symbolic link, or readable by its group, is refused with one line, exit 2.
    @Test func symlinkedAndGroupReadableKeyringsAreRefused() async throws {
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("k.yaml").path
        let link = dir.url.appendingPathComponent("link.yaml").path
        _ = await dynsecret(["keys", "generate", "--keyring", k])
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: k)
        var r = await dynsecret(["keys", "list", "--keyring", link])
        #expect(r.code == 2 && r.stdout.isEmpty)
        #expect(r.stderr == "error: keyring \(link): is a symbolic link; refusing to follow it\n")
        r = await dynsecret(["keys", "rotate", "--keyring", link])
        #expect(r.code == 2)
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: k)
        r = await dynsecret(["keys", "list", "--keyring", k])
        #expect(r.code == 2 && r.stdout.isEmpty)
        #expect(r.stderr == "error: keyring \(k): permissions 0640 are too open; it holds keys and must be private to its owner: run 'chmod 600 \(k)'\n")
    }

    /// `keys generate` never replaces what is at the path, even a dangling symbolic link (which it would write through).
    @Test func generateNeverReplaces() async throws {
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("k.yaml").path
        let target = dir.url.appendingPathComponent("elsewhere.yaml").path
        try FileManager.default.createSymbolicLink(atPath: k, withDestinationPath: target)
        let r = await dynsecret(["keys", "generate", "--keyring", k])
        #expect(r.code == 2, "\(r.stderr)")
        #expect(r.stderr == "error: keyring \(k) already exists; use 'dynsecret keys rotate' to add a key\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: k) == target)
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    /// Concurrent rotations are serialized by the keyring lock: none is lost.
    @Test func concurrentRotationsAreNotLost() throws {
        let binary = try #require(dynsecretBinary, "the dynsecret binary was not built")
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("k.yaml").path
        #expect(try runProcess(binary, ["keys", "generate", "--keyring", k]).code == 0)
        let n = 8
        var procs: [Process] = []
        for _ in 0..<n {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["keys", "rotate", "--keyring", k]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            procs.append(p)
        }
        for p in procs { try p.run() }
        for p in procs { p.waitUntilExit() }
        #expect(procs.allSatisfy { $0.terminationStatus == 0 })
        let list = try runProcess(binary, ["keys", "list", "--keyring", k])
        let lines = list.stdout.split(separator: "\n")
        #expect(lines.count == n + 2, "\(list.stdout)")
        #expect(lines.filter { $0.contains("  primary  ") }.count == 1)
    }

    /// `encrypt -o FILE` creates nothing when the input is bad.
    @Test func encryptWithOutputWritesNothingOnBadInput() async throws {
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("k.yaml").path
        let out = dir.url.appendingPathComponent("out.ksr1").path
        _ = await dynsecret(["keys", "generate", "--keyring", k])
        let bad = ["apiVersion: v1\nkind: ConfigMap\n", "apiVersion: v1\nkind: Secret\nmetadata:\n  namespace: x\n",
                   "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\ndata:\n  k: '!!notbase64'\n", "{"]
        for input in bad {
            let r = await dynsecret(["encrypt", "--keyring", k, "-f", "-", "-o", out], stdin: input)
            #expect(r.code == 2, "\(input): \(r.stderr)")
            #expect(r.stderr.hasPrefix("error: ") && r.stderr.filter { $0 == "\n" }.count == 1, "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
            #expect(files(dir.url.path) == ["k.yaml"], "\(files(dir.url.path))")
        }
    }

    /// A hostile bundle file (absurd counts and lengths) is refused with one line, exit 2, nothing written.
    @Test func hostileBundleFileIsRefused() async throws {
        let dir = try TempDir()
        let recovery = try Keyring.generate(now: "t")
        let rk = dir.url.appendingPathComponent("recovery.yaml").path
        try recovery.save(path: rk)
        let good = try craftedBundle([("team-a", "one")], recovery: recovery)
        var huge = good
        huge.replaceSubrange(21..<25, with: [0xFF, 0xFF, 0xFF, 0xFF])
        let headerOnly = Array("KSB1".utf8) + [1] + [UInt8](repeating: 7, count: 16) + [UInt8](repeating: 0xFF, count: 8)
        for (i, bytes) in [huge, headerOnly, Array(good.prefix(30))].enumerated() {
            let path = dir.url.appendingPathComponent("h\(i).ksb").path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let out = dir.url.appendingPathComponent("out\(i)").path
            let r = await dynsecret(["store", "restore", "--bundle", path, "--keyring", rk, "--out-dir", out])
            #expect(r.code == 2, "\(i): \(r.stderr)")
            #expect(r.stderr.hasPrefix("error: bundle ") && r.stderr.filter { $0 == "\n" }.count == 1, "\(i): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
    }
}
