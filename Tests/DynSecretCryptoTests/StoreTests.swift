import DynSecretCore
import Foundation
import Testing
@testable import DynSecretCrypto

let canary = "CANARY-7f3a9e-do-not-print"

func sampleSecret(_ i: Int, namespace: String = "team-a", uid: String = "uid-1") -> Secret {
    var s = Secret(metadata: ObjectMeta(name: "s\(i)", namespace: namespace), type: SecretType.basicAuth,
                   data: ["username": Array("user\(i)".utf8)], stringData: ["password": "\(canary)-\(i)"])
    s.metadata.uid = uid
    return s
}

@Suite struct StoreTests {
    /// 1,000 records under k1; rotate to k2; rewrap; retire k1: every record opens with the keyring alone and the
    /// payload ciphertext of every record is byte-identical before and after the rewrap.
    @Test func rotationOfAThousandRecords() throws {
        let dir = try TempDirectory()
        let store = try AtRestStore.open(dir.path + "/store", create: true, durable: false)
        var ring = try Keyring.generate(now: "2026-11-26T00:00:00Z")
        let k1 = ring.primary!.id
        for i in 0..<1000 {
            try store.write(sampleSecret(i % 100, namespace: "ns\(i / 100)"), generation: UInt64(i), keyring: ring, created: 1)
        }
        let locations = try store.records()
        #expect(locations.count == 1000)
        var before: [String: [UInt8]] = [:]
        for l in locations { before[l.path] = Array(try store.parse(l).ciphertext) }

        let k2 = try ring.rotate(now: "2026-11-26T01:00:00Z")
        #expect(ring.keys.first { $0.id == k1 }?.state == .decryptOnly)
        var rewrapped = 0
        for l in locations where try store.rewrap(l, keyring: ring) { rewrapped += 1 }
        #expect(rewrapped == 1000)
        // A second rewrap has nothing to do.
        #expect(try locations.allSatisfy { try !store.rewrap($0, keyring: ring) })

        try ring.retire(k1)
        let reloaded = try Keyring.decode(ring.encode(), source: "memory")
        #expect(!reloaded.usableIDs.contains(k1))
        for l in locations {
            let record = try store.parse(l)
            #expect(record.keyIDs == [k2])
            #expect(Array(record.ciphertext) == before[l.path], "payload changed by rewrap: \(l.path)")
            let secret = try store.read(l, keys: RecordKeys(keyring: reloaded))
            let i = Int(l.name.dropFirst())!
            #expect(secret.data["password"] == Array("\(canary)-\(i)".utf8))
            #expect(secret.type == SecretType.basicAuth)
        }
    }

    @Test func recordsAreBoundToTheirPathAndStore() throws {
        let dir = try TempDirectory()
        let a = try AtRestStore.open(dir.path + "/a", create: true, durable: false)
        let b = try AtRestStore.open(dir.path + "/b", create: true, durable: false)
        let ring = try Keyring.generate(now: "t")
        let l1 = try a.write(sampleSecret(1), generation: 1, keyring: ring, created: 1)
        let l2 = try a.write(sampleSecret(2), generation: 1, keyring: ring, created: 1)
        // Swap two records' files within a store.
        let bytes1 = try AtomicFile.read(l1.path)
        try AtomicFile.write(try AtomicFile.read(l2.path), to: l1.path)
        do {
            _ = try a.read(l1, keys: RecordKeys(keyring: ring))
            Issue.record("a swapped record opened")
        } catch {
            #expect(error.record?.code == .contextMismatch)
            #expect(error.message.contains(l1.path))
            #expect(!error.message.contains(canary))
        }
        // Copy a record into another store at the same relative path.
        let target = try b.path(namespace: l1.namespace, name: l1.name, uid: l1.uid, generation: 1)
        try AtomicFile.makeDirectory(AtomicFile.directory(of: target))
        try AtomicFile.write(bytes1, to: target)
        let moved = try b.records()[0]
        #expect(throws: StoreError.self) { try b.read(moved, keys: RecordKeys(keyring: ring)) }
    }

    @Test func filesArePrivate() throws {
        let dir = try TempDirectory()
        let store = try AtRestStore.open(dir.path + "/s", create: true)
        let ring = try Keyring.generate(now: "t")
        let l = try store.write(sampleSecret(1), generation: 7, keyring: ring, created: 1)
        #expect(try AtomicFile.permissions(l.path) == 0o600)
        #expect(try AtomicFile.permissions(dir.path + "/s") == 0o700)
        #expect(l.path.hasSuffix("/records/team-a/s1/00000000000000000007-uid-1.ksr1"))
        #expect(try AtomicFile.list(AtomicFile.directory(of: l.path)) == [l.path.split(separator: "/").last.map(String.init)!])
        #expect(try store.records(namespace: "team-a", name: "s1").map(\.generation) == [7])
    }

    @Test(arguments: ["../x", ".hidden", "a/b", ""])
    func unsafeNamesAreRefused(name: String) throws {
        let dir = try TempDirectory()
        let store = try AtRestStore.open(dir.path, create: true, durable: false)
        #expect(throws: StoreError.self) { try store.path(namespace: "ns", name: name, uid: "", generation: 0) }
    }

    @Test func keyringFile() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/keyring.yaml"
        var ring = try Keyring.generate(now: "2026-11-26T00:00:00Z")
        try ring.rotate(now: "2026-11-26T00:00:01Z")
        try ring.save(path: path)
        #expect(try AtomicFile.permissions(path) == 0o600)
        let loaded = try Keyring.load(path: path)
        #expect(loaded.keys.map(\.id) == ring.keys.map(\.id))
        #expect(loaded.keys.map(\.state) == [.decryptOnly, .primary])
        #expect(loaded.keys[1].material!.equals(ring.keys[1].material!))

        chmod(path, 0o640)
        do {
            _ = try Keyring.load(path: path)
            Issue.record("a group-readable keyring was accepted")
        } catch {
            #expect(error.message == "keyring \(path): permissions 0640 are too open; it holds keys and must be private to its owner: run 'chmod 600 \(path)'")
        }
    }

    @Test(arguments: [
        ("kind: Keyring\napiVersion: dynsecret.io/v1alpha1\nkeys: []\n", "keys: expected exactly one primary key, found 0"),
        ("kind: Secret\n", "kind: expected Keyring"),
        ("kind: Keyring\napiVersion: dynsecret.io/v1alpha1\nkeys:\n- kid: zz\n", "keys[0].kid: expected 32 lowercase hex digits"),
        ("kind: Keyring\napiVersion: dynsecret.io/v1alpha1\nkeys:\n- kid: 00112233445566778899aabbccddeeff\n  state: primary\n  key: c2hvcnQ=\n", "keys[0].key: expected 32 bytes in base64"),
        ("kind: Keyring\napiVersion: dynsecret.io/v1alpha1\nkeys:\n- kid: 00112233445566778899aabbccddeeff\n  state: lost\n", "keys[0].state: expected primary, decrypt-only or retired"),
    ])
    func badKeyrings(text: String, message: String) {
        do {
            _ = try Keyring.decode(Array(text.utf8), source: "k.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.message == "keyring k.yaml: \(message)")
        }
    }

    @Test func bundleRoundTripAndTamperDetection() throws {
        let dir = try TempDirectory()
        let store = try AtRestStore.open(dir.path + "/s", create: true, durable: false)
        let ring = try Keyring.generate(now: "t")
        let recovery = try Keyring.generate(now: "t")
        for i in 0..<5 { try store.write(sampleSecret(i), generation: UInt64(i), keyring: ring, created: 1) }
        try store.write(sampleSecret(0), generation: 10, keyring: ring, created: 1)
        let bundle = try AtRestBundle.export(store: store, keyring: ring, passphrase: nil, recovery: recovery, created: 1)
        #expect(!String(decoding: bundle, as: UTF8.self).contains(canary))
        let opened = try AtRestBundle.open(bundle, keys: RecordKeys(keyring: recovery))
        #expect(opened.count == 6)
        #expect(opened.map(\.0.generation) == [0, 10, 1, 2, 3, 4])
        #expect(opened[1].1.data["password"] == Array("\(canary)-0".utf8))
        // The store's own keyring does not open the bundle.
        #expect(throws: RecordError.self) { try AtRestBundle.open(bundle, keys: RecordKeys(keyring: ring)) }

        // Split the bundle into its parts to drop, duplicate and roll back records.
        var r = ByteReader(bundle)
        let head = try r.take(4 + 1 + 16, "head")
        let count = Int(try r.u32("count"))
        var parts: [[UInt8]] = []
        for _ in 0..<(count + 2) { parts.append(try r.take(Int(try r.u32("len")), "part")) }
        func assemble(_ records: [[UInt8]]) -> [UInt8] {
            var w = ByteWriter()
            w.raw(head)
            w.u32(UInt32(records.count))
            for p in [parts[0]] + records + [parts.last!] { w.u32(UInt32(p.count)); w.raw(p) }
            return w.bytes
        }
        let records = Array(parts[1...count])
        #expect(try AtRestBundle.open(assemble(records), keys: RecordKeys(keyring: recovery)).count == 6)
        let cases: [(String, [[UInt8]])] = [
            ("dropped", Array(records.dropLast())),
            ("duplicated", records.dropLast() + [records[0]]),
            ("rolled back", [records[0], records[0]] + records[2...]),
            ("reordered", [records[1], records[0]] + records[2...]),
        ]
        for (what, list) in cases {
            do {
                _ = try AtRestBundle.open(assemble(list), keys: RecordKeys(keyring: recovery))
                Issue.record("\(what) records were accepted")
            } catch {
                #expect(error.code == .contextMismatch, "\(what): \(error.message)")
            }
        }
    }

    @Test func passphraseBundle() throws {
        let dir = try TempDirectory()
        let store = try AtRestStore.open(dir.path + "/s", create: true, durable: false)
        let ring = try Keyring.generate(now: "t")
        try store.write(sampleSecret(1), generation: 1, keyring: ring, created: 1)
        let bundle = try AtRestBundle.export(store: store, keyring: ring, passphrase: Array("pässword".utf8), recovery: nil,
                                             scryptLogN: KSR1.minScryptLogN, created: 1)
        #expect(try AtRestBundle.open(bundle, keys: RecordKeys(passphrase: Array("pässword".utf8))).count == 1)
        do {
            _ = try AtRestBundle.open(bundle, keys: RecordKeys(passphrase: Array("password".utf8)))
            Issue.record("wrong passphrase accepted")
        } catch {
            #expect(error.code == .unwrapFailed)
        }
    }
}
