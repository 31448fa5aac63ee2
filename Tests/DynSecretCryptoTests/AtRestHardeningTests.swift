import DynSecretCore
import Foundation
import Testing
@testable import DynSecretCrypto

#if canImport(Glibc)
import Glibc
#endif

/// Fixes from the at-rest review: escaped errors, byte-exact context checks, scrypt bounds, file safety, hostile bundles.
@Suite struct AtRestHardeningTests {
    static func ring() throws -> Keyring { try Keyring.generate(now: "2026-11-26T00:00:00Z") }

    /// Context strings come from the record; an error that shows them stays one line, escaped and truncated.
    @Test func contextErrorsAreOneLineEscapedAndTruncated() throws {
        let ring = try Self.ring()
        let hostile = "evil\n\r\u{1b}[31mred\u{7f}\u{85}\u{2028}" + String(repeating: "x", count: 500)
        let record = try AtRestRecord.seal(RecordPayload(type: "Opaque", data: [:]),
                                           context: RecordContext(namespace: hostile, name: hostile), keyring: ring, created: 0)
        for expect in [ExpectedContext(namespace: "team-a"), ExpectedContext(name: "db")] {
            do {
                _ = try AtRestRecord.open(record, keys: RecordKeys(keyring: ring), expecting: expect)
                Issue.record("a record with another context opened")
            } catch {
                let text = error.located("/tmp/r\nx.ksr1").description
                #expect(error.code == .contextMismatch)
                #expect(!text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.value == 0x2028 }, "\(text)")
                #expect(text.contains("evil\\u{a}\\u{d}\\u{1b}[31mred\\u{7f}\\u{85}\\u{2028}"))
                #expect(text.contains("…"))
                #expect(text.utf8.count < 300, "not truncated: \(text.utf8.count) bytes")
                #expect(!text.contains(String(repeating: "x", count: 101)))
            }
        }
        #expect(RecordError.display("a\\b") == "a\\\\b")
        #expect(RecordError.display(String(repeating: "é", count: 80)).utf8.count <= 100 + "…".utf8.count)
    }

    /// Context fields compare as UTF-8 bytes: an NFD spelling does not match an NFC one (as for the Python reader).
    @Test func contextIsComparedAsBytes() throws {
        let ring = try Self.ring()
        let record = try AtRestRecord.seal(RecordPayload(type: "Opaque", data: [:]),
                                           context: RecordContext(namespace: "caf\u{e9}", name: "n"), keyring: ring, created: 0)
        #expect(throws: RecordError.self) {
            try AtRestRecord.open(record, keys: RecordKeys(keyring: ring), expecting: ExpectedContext(namespace: "cafe\u{301}"))
        }
        _ = try AtRestRecord.open(record, keys: RecordKeys(keyring: ring), expecting: ExpectedContext(namespace: "caf\u{e9}"))
    }

    /// Writers refuse scrypt costs outside 17...20 and a second passphrase slot, without trapping on large values.
    @Test func passphraseSlotParametersAreBounded() throws {
        let ring = try Self.ring()
        let payload = RecordPayload(type: "Opaque", data: [:])
        for logN in [0, 16, 21, 255, 256, 1000] {
            #expect(throws: RecordError.self) {
                try AtRestRecord.seal(payload, context: RecordContext(namespace: "a", name: "b"), keyring: ring,
                                      passphrase: Array("pw".utf8), scryptLogN: logN, created: 0)
            }
            #expect(throws: RecordError.self) {
                try AtRestRecord.seal(payload, context: RecordContext(namespace: "a", name: "b"), created: 0,
                                      slots: [.passphrase(Array("pw".utf8), logN: logN)], random: SystemRandomness())
            }
        }
        do {
            _ = try AtRestRecord.seal(payload, context: RecordContext(namespace: "a", name: "b"), created: 0,
                                      slots: [.passphrase(Array("pw".utf8), logN: 17), .passphrase(Array("pw".utf8), logN: 17)],
                                      random: SystemRandomness())
            Issue.record("two passphrase slots were written")
        } catch {
            #expect(error.code == .malformed)
        }
        let dir = try TempDirectory()
        let store = try AtRestStore.open(dir.path + "/s", create: true, durable: false)
        for logN in [16, 21, 300] {
            #expect(throws: StoreError.self) {
                try AtRestBundle.export(store: store, keyring: ring, passphrase: Array("pw".utf8), recovery: nil, scryptLogN: logN, created: 0)
            }
        }
    }

    /// scrypt's memory arithmetic never overflows and has a fixed ceiling.
    @Test func scryptMemoryIsCheckedAndCapped() {
        #expect(Scrypt.memoryNeeded(logN: 20, r: 8, p: 1)! <= Scrypt.memoryCeiling)
        #expect(Scrypt.memoryNeeded(logN: 60, r: 1 << 20, p: 1) == nil)
        #expect(Scrypt.memoryNeeded(logN: 1, r: Int.max, p: Int.max) == nil)
        #expect(throws: CryptoError.self) { try Scrypt.derive(password: [1], salt: [2], logN: 1, r: Int.max, p: Int.max) }
        #expect(throws: CryptoError.self) { try Scrypt.derive(password: [1], salt: [2], logN: 30, r: 8, p: 1) }
        #expect(throws: CryptoError.self) { try Scrypt.derive(password: [1], salt: [2], logN: 21, r: 8, p: 1) }
    }

    /// AtomicFile.read refuses symbolic links, FIFOs (without blocking) and files over the size limit.
    @Test func atomicReadRefusesNonRegularAndHugeFiles() throws {
        let dir = try TempDirectory()
        let file = dir.path + "/f"
        try AtomicFile.write(Array("hello".utf8), to: file)
        #expect(try AtomicFile.read(file) == Array("hello".utf8))
        let link = dir.path + "/link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: file)
        #expect { try AtomicFile.read(link) } throws: { ($0 as? FileError)?.message.contains("symbolic link") == true }
        let fifo = dir.path + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect { try AtomicFile.read(fifo) } throws: { ($0 as? FileError)?.message == "is a FIFO, not a regular file" }
        #expect { try AtomicFile.read(dir.path) } throws: { ($0 as? FileError)?.message == "is a directory" }
        #expect { try AtomicFile.read(file, maxBytes: 4) } throws: { ($0 as? FileError)?.message.contains("limit is 4") == true }
    }

    /// A keyring behind a symbolic link, or readable by group or others, is refused.
    @Test func keyringFileMustBePrivateAndRegular() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/k.yaml"
        try Self.ring().save(path: path)
        _ = try Keyring.load(path: path)
        let link = dir.path + "/link.yaml"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        #expect { try Keyring.load(path: link) } throws: { ($0 as? KeyringError)?.message.contains("symbolic link") == true }
        for mode in [0o640, 0o604, 0o660] {
            #expect(chmod(path, mode_t(mode)) == 0)
            #expect { try Keyring.load(path: path) } throws: { ($0 as? KeyringError)?.message.contains("too open") == true }
        }
        #expect(chmod(path, 0o600) == 0)
        // save(replace: false) never replaces an existing file or a dangling symbolic link.
        #expect { try Self.ring().save(path: path, replace: false) } throws: { ($0 as? KeyringError)?.message.contains("already exists") == true }
        let dangling = dir.path + "/dangling.yaml"
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: dir.path + "/nowhere")
        #expect { try Self.ring().save(path: dangling, replace: false) } throws: { ($0 as? KeyringError)?.message.contains("already exists") == true }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/nowhere"))
    }

    /// `records(namespace:name:)` refuses segments that would leave the store.
    @Test func recordListingValidatesSegments() throws {
        let dir = try TempDirectory()
        let store = try AtRestStore.open(dir.path + "/s", create: true, durable: false)
        for (ns, name) in [("../..", nil), ("a/b", nil), ("ok", ".."), ("ok", "../x"), ("", nil)] as [(String, String?)] {
            #expect(throws: StoreError.self) { try store.records(namespace: ns, name: name) }
        }
        #expect(try store.records(namespace: "team-a", name: "db").isEmpty)
    }

    /// A store entry whose directory name holds a line break and that cannot be read gives a one-line error.
    @Test func storeFileErrorsStayOneLine() throws {
        let dir = try TempDirectory()
        let store = try AtRestStore.open(dir.path + "/s", create: true, durable: false)
        let odd = dir.path + "/s/records/team-a/x\ny"
        try AtomicFile.makeDirectory(odd, durable: false)
        #expect(mkfifo(odd + "/00000000000000000001.ksr1", 0o600) == 0)
        let locations = try store.records()
        #expect(locations.count == 1)
        #expect { try store.parse(locations[0]) } throws: { error in
            guard let e = error as? StoreError else { return false }
            return !e.message.contains("\n") && e.message.contains("x\\u{a}y") && e.message.contains("not a regular file")
        }
    }

    /// Bundles with absurd counts or lengths are refused quickly with an error, never a crash or a huge allocation.
    @Test func hostileBundleIsRefused() throws {
        let dir = try TempDirectory()
        let store = try AtRestStore.open(dir.path + "/s", create: true, durable: false)
        let ring = try Self.ring()
        let recovery = try Self.ring()
        try store.write(sampleSecret(1), generation: 1, keyring: ring, created: 1)
        let bundle = try AtRestBundle.export(store: store, keyring: ring, passphrase: nil, recovery: recovery, created: 1)
        _ = try AtRestBundle.open(bundle, keys: RecordKeys(keyring: recovery))
        let countOffset = 4 + 1 + 16
        var variants: [[UInt8]] = []
        var b = bundle
        b.replaceSubrange(countOffset..<countOffset + 4, with: [0xFF, 0xFF, 0xFF, 0xFF])
        variants.append(b)
        b = bundle
        b.replaceSubrange(countOffset + 4..<countOffset + 8, with: [0xFF, 0xFF, 0xFF, 0xFF])
        variants.append(b)
        b = bundle
        b.replaceSubrange(countOffset..<countOffset + 4, with: [0, 0, 0, 0])
        variants.append(b)
        variants.append(Array("KSB1".utf8) + [1] + [UInt8](repeating: 0, count: 16) + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        variants.append(bundle + [0])
        variants.append(Array(bundle.dropLast(1)))
        for (i, v) in variants.enumerated() {
            do {
                _ = try AtRestBundle.open(v, keys: RecordKeys(keyring: recovery))
                Issue.record("hostile bundle \(i) opened")
            } catch {
                #expect(!error.description.contains("\n"), "variant \(i)")
                #expect(!error.description.contains(canary), "variant \(i)")
            }
        }
    }
}
