import DynSecretCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let canary = "CANARY-91c2-never-printed"

private func secretManifest(name: String = "db", value: String = canary) -> String {
    """
    apiVersion: v1
    kind: Secret
    metadata:
      name: \(name)
      namespace: team-a
      uid: 0b8c-44
      resourceVersion: "12"
      annotations:
        note: not kept
    type: Opaque
    stringData:
      password: \(value)
    data:
      user: YWRtaW4=

    """
}

private func mode(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
}

private func assertNoLeak(_ r: RunResult, _ what: Comment? = nil) {
    #expect(!r.stderr.contains(canary), what)
    #expect(!r.stderr.contains(Base64.encode(Array(canary.utf8))), what)
}

@Suite struct AtRestCLITests {
    @Test func keyringLifecycle() async throws {
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("keyring.yaml").path
        var r = await dynsecret(["keys", "generate", "--keyring", k])
        #expect(r.code == 0)
        #expect(try mode(k) == 0o600)
        let firstKid = String(r.stdout.split(separator: " ").last!.dropLast())
        #expect(firstKid.count == 32)

        r = await dynsecret(["keys", "generate", "--keyring", k])
        #expect(r.code == 2)
        #expect(r.stderr == "error: keyring \(k) already exists; use 'dynsecret keys rotate' to add a key\n")

        r = await dynsecret(["keys", "rotate", "--keyring", k])
        #expect(r.code == 0)
        #expect(r.stdout.contains("\(firstKid) is now decrypt-only"))

        r = await dynsecret(["keys", "list", "--keyring", k])
        #expect(r.code == 0)
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("KID"))
        #expect(lines[1].hasPrefix("\(firstKid)  decrypt-only"))
        #expect(lines[2].contains("  primary  "))
        // Key bytes never appear in listings.
        let file = try String(contentsOfFile: k, encoding: .utf8)
        for line in file.split(separator: "\n") where line.contains("key: ") {
            #expect(!r.stdout.contains(line.split(separator: " ").last!))
        }

        r = await dynsecret(["keys", "retire", "--keyring", k, String(firstKid.prefix(10)), "--force"])
        #expect(r.code == 0)
        #expect(r.stdout == "retired key \(firstKid)\n")
        #expect(try mode(k) == 0o600)
        let after = try String(contentsOfFile: k, encoding: .utf8)
        #expect(after.components(separatedBy: "key: ").count == 2)  // only the primary keeps bytes

        r = await dynsecret(["keys", "retire", "--keyring", k, lines[2].split(separator: " ")[0].description, "--force"])
        #expect(r.code == 2)
        #expect(r.stderr.contains("is the primary key; run 'dynsecret keys rotate' first"))
    }

    @Test func openKeyringIsRefused() async throws {
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("k.yaml").path
        _ = await dynsecret(["keys", "generate", "--keyring", k])
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: k)
        let r = await dynsecret(["keys", "list", "--keyring", k])
        #expect(r.code == 2)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr == "error: keyring \(k): permissions 0644 are too open; it holds keys and must be private to its owner: run 'chmod 600 \(k)'\n")
    }

    @Test func encryptDecryptAndTamper() async throws {
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("k.yaml").path
        let rec = dir.url.appendingPathComponent("db.ksr1").path
        _ = await dynsecret(["keys", "generate", "--keyring", k])
        var r = await dynsecret(["encrypt", "--keyring", k, "-f", "-", "-o", rec], stdin: secretManifest())
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(try mode(rec) == 0o600)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: rec))
        #expect(!String(decoding: bytes, as: UTF8.self).contains(canary))
        #expect(!String(decoding: bytes, as: UTF8.self).contains("not kept"))

        r = await dynsecret(["decrypt", "--keyring", k, rec, "-o", "json", "-n", "team-a", "--name", "db"])
        #expect(r.code == 0, "\(r.stderr)")
        let secret = try Secret.decode(try JSONParser.parse(r.stdout)).secret
        #expect(secret.data == ["password": Array(canary.utf8), "user": Array("admin".utf8)])
        #expect(secret.metadata.name == "db" && secret.metadata.namespace == "team-a")
        #expect(secret.metadata.annotations.isEmpty)

        r = await dynsecret(["decrypt", "--keyring", k, rec, "-n", "team-b"])
        #expect(r.code == 2 && r.stdout.isEmpty)
        #expect(r.stderr == "error: record \(rec): the record is bound to namespace \"team-a\", expected \"team-b\" (moved or swapped record)\n")

        // Flip bits across the whole record: every variant is refused with one line naming the file, nothing printed.
        var codes = Set<String>()
        for offset in stride(from: 0, to: bytes.count, by: 7) {
            var b = bytes
            b[offset] ^= 0x10
            try b.write(to: URL(fileURLWithPath: rec))
            r = await dynsecret(["decrypt", "--keyring", k, rec])
            #expect(r.code == 2, "offset \(offset)")
            #expect(r.stdout.isEmpty, "offset \(offset)")
            #expect(r.stderr.hasPrefix("error: record \(rec): ") && r.stderr.filter { $0 == "\n" }.count == 1, "offset \(offset): \(r.stderr)")
            assertNoLeak(r, "offset \(offset)")
            codes.insert(String(r.stderr.dropFirst("error: record \(rec): ".count).prefix(20)))
        }
        #expect(codes.count >= 5, "expected distinct messages, got \(codes)")

        try bytes.prefix(bytes.count - 5).write(to: URL(fileURLWithPath: rec))
        r = await dynsecret(["decrypt", "--keyring", k, rec])
        #expect(r.code == 2 && r.stdout.isEmpty)
        #expect(r.stderr.contains("truncated"))
    }

    @Test func passphraseSlot() async throws {
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("k.yaml").path
        let rec = dir.url.appendingPathComponent("r.ksr1").path
        let pw = try dir.file("pw", "long passphrase for the recovery slot\n")
        let wrong = try dir.file("wrong", "not it\n")
        _ = await dynsecret(["keys", "generate", "--keyring", k])
        var r = await dynsecret(["encrypt", "--keyring", k, "-f", "-", "-o", rec, "--passphrase-file", pw], stdin: secretManifest())
        #expect(r.code == 0, "\(r.stderr)")
        r = await dynsecret(["decrypt", rec, "--passphrase-file", pw])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains(Base64.encode(Array(canary.utf8))))
        r = await dynsecret(["decrypt", rec, "--passphrase-file", wrong])
        #expect(r.code == 2 && r.stdout.isEmpty)
        #expect(r.stderr == "error: record \(rec): the passphrase slot did not open: wrong passphrase, or the header was changed\n")
        r = await dynsecret(["decrypt", rec])
        #expect(r.code == 2)
        #expect(r.stderr.contains("give --keyring FILE or --passphrase-file FILE"))
    }

    @Test func encryptRejectsBadInput() async throws {
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("k.yaml").path
        _ = await dynsecret(["keys", "generate", "--keyring", k])
        var r = await dynsecret(["encrypt", "--keyring", k, "-f", "-"], stdin: "apiVersion: v1\nkind: ConfigMap\n")
        #expect(r.code == 2 && r.stdout.isEmpty)
        #expect(r.stderr == "error: -: document 1 (line 1): kind: expected kind Secret, got \"ConfigMap\"\n")
        r = await dynsecret(["encrypt", "--keyring", k, "-f", "-"], stdin: secretManifest() + "---\n" + secretManifest())
        #expect(r.code == 2 && r.stderr.contains("expected one Secret, found 2 documents"))
        r = await dynsecret(["encrypt", "--keyring", dir.url.appendingPathComponent("missing.yaml").path, "-f", "-"], stdin: secretManifest())
        #expect(r.code == 2 && r.stderr.contains("no such file (create one with 'dynsecret keys generate"))
    }

    @Test func storeRotationAndRestore() async throws {
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("k.yaml").path
        let store = dir.url.appendingPathComponent("store").path
        _ = await dynsecret(["keys", "generate", "--keyring", k])
        for (i, name) in ["a", "b", "c"].enumerated() {
            let r = await dynsecret(["store", "put", "--store", store, "--keyring", k, "-f", "-", "--generation", String(i + 1)],
                                    stdin: secretManifest(name: name, value: "\(canary)-\(name)"))
            #expect(r.code == 0, "\(r.stderr)")
        }
        _ = await dynsecret(["store", "put", "--store", store, "--keyring", k, "-f", "-", "--generation", "9"], stdin: secretManifest(name: "a", value: "newest"))
        var r = await dynsecret(["keys", "rotate", "--keyring", k])
        let list = await dynsecret(["keys", "list", "--keyring", k])
        let old = String(list.stdout.split(separator: "\n")[1].prefix(32))

        r = await dynsecret(["keys", "retire", "--keyring", k, old, "--store", store])
        #expect(r.code == 1)
        #expect(r.stderr.contains("4 record(s) in \(store) can be opened only with key \(old)"))

        r = await dynsecret(["store", "status", "--store", store, "--keyring", k])
        #expect(r.code == 0)
        #expect(r.stdout.contains("\(old)  decrypt-only  4"))

        r = await dynsecret(["store", "rewrap", "--store", store, "--keyring", k])
        #expect(r.code == 0)
        #expect(r.stdout.hasPrefix("rewrapped 4 of 4 record(s)"))
        r = await dynsecret(["keys", "retire", "--keyring", k, old, "--store", store])
        #expect(r.code == 0, "\(r.stderr)")

        r = await dynsecret(["store", "status", "--store", store, "--keyring", k, "--verify"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("\(old)  retired  0"))

        r = await dynsecret(["store", "restore", "--store", store, "--keyring", k])
        #expect(r.code == 0)
        let docs = try ManifestReader.read(Array(r.stdout.utf8), source: "-")
        #expect(docs.count == 3)
        let a = try Secret.decode(docs[0].value).secret
        #expect(a.metadata.name == "a" && a.data["password"] == Array("newest".utf8))
        r = await dynsecret(["store", "restore", "--store", store, "--keyring", k, "--all-versions"])
        #expect(try ManifestReader.read(Array(r.stdout.utf8), source: "-").count == 4)

        // Export to a bundle under a recovery keyring and restore from it into files.
        let recovery = dir.url.appendingPathComponent("recovery.yaml").path
        let bundle = dir.url.appendingPathComponent("backup.ksb").path
        let out = dir.url.appendingPathComponent("restored").path
        _ = await dynsecret(["keys", "generate", "--keyring", recovery])
        r = await dynsecret(["store", "export", "--store", store, "--keyring", k, "--recovery-keyring", recovery, "-o", bundle])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try mode(bundle) == 0o600)
        r = await dynsecret(["store", "restore", "--bundle", bundle, "--keyring", recovery, "--out-dir", out])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == ["team-a.a.yaml", "team-a.b.yaml", "team-a.c.yaml"])
        #expect(try mode(out + "/team-a.b.yaml") == 0o600)
        #expect(try String(contentsOfFile: out + "/team-a.b.yaml", encoding: .utf8).contains(Base64.encode(Array("\(canary)-b".utf8))))
        // The store keyring cannot open the bundle.
        r = await dynsecret(["store", "restore", "--bundle", bundle, "--keyring", k])
        #expect(r.code == 2 && r.stdout.isEmpty)
        #expect(r.stderr.contains("no slot opens with the keys given"))
    }

    /// A writer SIGKILLed at random points leaves every record complete: the old version or the new one, never torn.
    ///
    /// The pass condition does not depend on timing luck: each round waits until the writer has completed at least
    /// one write (so process start-up on a slow, loaded machine cannot eat the kill window), then kills it after a
    /// short random delay. A kill that landed mid-write is proven by a new temporary file left behind; the test needs
    /// at least `minTornWrites` of those and runs for a bounded time (`budget`), checking the store after every kill.
    @Test func crashSafety() throws {
        let binary = try #require(dynsecretBinary, "the dynsecret binary was not built")
        let dir = try TempDir()
        let k = dir.url.appendingPathComponent("k.yaml").path
        let store = dir.url.appendingPathComponent("store").path
        let manifests = [("A", "version-A"), ("B", String(repeating: "version-B", count: 20_000))].map { tag, value in
            (value, try! dir.file("\(tag).yaml", secretManifest(value: value)))
        }
        #expect(try runProcess(binary, ["keys", "generate", "--keyring", k]).code == 0)
        #expect(try runProcess(binary, ["store", "put", "--store", store, "--keyring", k, "-f", manifests[0].1]).code == 0)
        let recordDir = "\(store)/records/team-a/db"
        func leftovers() -> Set<String> {
            Set(((try? FileManager.default.contentsOfDirectory(atPath: recordDir)) ?? []).filter { $0.hasPrefix(".") && $0.contains(".tmp-") })
        }
        func inode(_ path: String) -> UInt64? {
            var st = stat()
            return stat(path, &st) == 0 ? UInt64(st.st_ino) : nil
        }
        let minTornWrites = 3
        let budget: TimeInterval = 120
        let start = Date()
        var rng = SystemRandomNumberGenerator()
        var kills = 0
        var tornWrites = 0
        var round = 0
        while round < 50 || tornWrites < minTornWrites {
            if Date().timeIntervalSince(start) > budget { break }
            let (_, path) = manifests[round % 2]
            // Generations 12 (rewritten over and over) and 13+round (a new file each round).
            let generation = round % 4 == 0 ? 13 + round : 12
            let target = "\(recordDir)/\(String(repeating: "0", count: 20 - String(generation).count))\(generation)-0b8c-44.ksr1"
            let before = inode(target)
            let tempsBefore = leftovers()
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["store", "put", "--store", store, "--keyring", k, "-f", path, "--repeat", "100000", "--generation", String(generation)]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            // Wait (bounded) until the writer has put one complete record in place: it is now in its write loop.
            let waitStart = Date()
            while p.isRunning && inode(target) == before && Date().timeIntervalSince(waitStart) < 30 { usleep(1_000) }
            usleep(UInt32.random(in: 0...30_000, using: &rng))
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                kills += 1
            }
            p.waitUntilExit()
            if !leftovers().subtracting(tempsBefore).isEmpty { tornWrites += 1 }
            let check = try runProcess(binary, ["store", "status", "--store", store, "--keyring", k, "--verify"])
            #expect(check.code == 0, "round \(round): \(check.stderr)")
            round += 1
        }
        #expect(tornWrites >= minTornWrites, "only \(tornWrites) of \(kills) kills in \(round) rounds landed mid-write")
        // Interrupted writes leave their temporary files behind (ignored by readers): proof that kills landed mid-write.
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: store).filter { $0.contains("/.") && $0.contains(".tmp-") }
        #expect(leftovers.count >= tornWrites)
        let status = try runProcess(binary, ["store", "status", "--store", store, "--keyring", k])
        #expect(status.stdout.contains("temporary files of interrupted writes (ignored, safe to delete): \(leftovers.count)"))
        let restored = try runProcess(binary, ["store", "restore", "--store", store, "--keyring", k, "--all-versions"])
        #expect(restored.code == 0)
        let docs = try ManifestReader.read(Array(restored.stdout.utf8), source: "-")
        #expect(docs.count >= 2)
        for doc in docs {
            let s = try Secret.decode(doc.value).secret
            let value = String(decoding: s.data["password"] ?? [], as: UTF8.self)
            #expect(manifests.contains { $0.0 == value }, "a record holds neither version")
        }
    }
}
