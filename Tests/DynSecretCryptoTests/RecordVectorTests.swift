import DynSecretCore
import Foundation
import Testing
@testable import DynSecretCrypto

/// The published vectors (Vectors/ksr1-vectors.json), produced by the independent Python implementation.
struct Vectors {
    struct Positive: Sendable, CustomTestStringConvertible {
        var name: String
        var context: RecordContext
        var created: UInt64
        var dek: [UInt8]
        var payloadNonce: [UInt8]
        var slots: [(type: Int, kid: [UInt8], passphrase: String, logN: Int, salt: [UInt8], nonce: [UInt8])]
        var payload: RecordPayload
        var record: [UInt8]
        var testDescription: String { name }
    }

    struct Negative: Sendable, CustomTestStringConvertible {
        var name: String
        var record: [UInt8]
        var keys: [String]
        var passphrase: String?
        var expect: ExpectedContext
        var error: String
        var testDescription: String { name }
    }

    var keys: [String: (kid: [UInt8], kek: [UInt8])] = [:]
    var positive: [Positive] = []
    var negative: [Negative] = []

    static let shared: Vectors = {
        let url = testSourceDirectory.appendingPathComponent("Vectors/ksr1-vectors.json")
        let bytes = Array(try! Data(contentsOf: url))
        let root = try! JSONParser.parse(bytes)
        var v = Vectors()
        for (name, k) in root["keys"]!.objectValue!.members {
            v.keys[name] = (hex(k["kid"]!.stringValue!), hex(k["kek"]!.stringValue!))
        }
        func num(_ x: JSONValue?) -> UInt64 {
            if case .number(let n) = x! { return UInt64(n)! }
            fatalError("not a number")
        }
        for p in root["positive"]!.arrayValue! {
            let c = p["context"]!
            let context = RecordContext(storeID: c["store_id"]!.stringValue!, namespace: c["namespace"]!.stringValue!, name: c["name"]!.stringValue!,
                                        uid: c["uid"]!.stringValue!, generation: num(c["generation"]))
            var data: [String: [UInt8]] = [:]
            for (k, b) in p["data"]!.objectValue!.members { data[k] = Base64.decode(b.stringValue!)! }
            let slots = p["slots"]!.arrayValue!.map { s in
                (type: Int(num(s["type"])), kid: hex(s["kid"]?.stringValue ?? ""), passphrase: s["passphrase"]?.stringValue ?? "",
                 logN: s["logN"].map { _ in Int(num(s["logN"])) } ?? 0, salt: hex(s["salt"]!.stringValue!), nonce: hex(s["nonce"]!.stringValue!))
            }
            v.positive.append(Positive(name: p["name"]!.stringValue!, context: context, created: num(p["created"]), dek: hex(p["dek"]!.stringValue!),
                                       payloadNonce: hex(p["payload_nonce"]!.stringValue!), slots: slots,
                                       payload: RecordPayload(type: p["type"]!.stringValue!, data: data), record: hex(p["record"]!.stringValue!)))
        }
        for n in root["negative"]!.arrayValue! {
            let e = n["expect"]!.objectValue!
            let expect = ExpectedContext(storeID: e["store_id"]?.stringValue, namespace: e["namespace"]?.stringValue, name: e["name"]?.stringValue)
            v.negative.append(Negative(name: n["name"]!.stringValue!, record: hex(n["record"]!.stringValue!),
                                       keys: n["keys"]!.arrayValue!.map { $0.stringValue! }, passphrase: n["passphrase"]?.stringValue,
                                       expect: expect, error: n["error"]!.stringValue!))
        }
        return v
    }()

    func keyring(_ names: [String]) -> Keyring {
        var ring = Keyring(keys: [])
        for (i, n) in names.enumerated() {
            var kek = keys[n]!.kek
            ring.add(id: KeyID(bytes: keys[n]!.kid), material: SecretBytes(consuming: &kek), state: i == 0 ? .primary : .decryptOnly)
        }
        return ring
    }
}


@Suite struct RecordVectorTests {
    static let vectors = Vectors.shared

    @Test func vectorFileIsComplete() {
        #expect(Self.vectors.positive.count >= 4)
        #expect(Self.vectors.negative.count >= 40)
        // Every documented error code is exercised by some vector.
        let codes = Set(Self.vectors.negative.map(\.error))
        for code in ["not-a-record", "unsupported-version", "unsupported-suite", "truncated", "malformed", "bad-payload-length",
                     "context-mismatch", "no-usable-slot", "scrypt-cost", "unwrap-failed", "header-mac", "payload-authentication",
                     "payload-malformed", "padding"] {
            #expect(codes.contains(code), "no vector for \(code)")
        }
    }

    /// Sealing with the vector's fixed data key, nonces and salts reproduces the Python implementation's bytes exactly.
    @Test(arguments: Vectors.shared.positive)
    func knownAnswer(_ v: Vectors.Positive) throws {
        var chunks = [v.payloadNonce]
        var slotKeys: [SlotKey] = []
        for s in v.slots {
            chunks += [s.salt, s.nonce]
            if s.type == 1 {
                let name = ["1", "2"].first { Self.vectors.keys[$0]!.kid == s.kid }!
                var kek = Self.vectors.keys[name]!.kek
                slotKeys.append(.kek(KeyID(bytes: s.kid), SecretBytes(consuming: &kek)))
            } else {
                slotKeys.append(.passphrase(Array(s.passphrase.utf8), logN: s.logN))
            }
        }
        let sealed = try AtRestRecord.seal(v.payload, context: v.context, created: v.created, slots: slotKeys,
                                           random: FixedRandomness(dek: v.dek, chunks: chunks))
        #expect(hexString(sealed) == hexString(v.record))

        let opened = try AtRestRecord.open(v.record, keys: RecordKeys(keyring: Self.vectors.keyring(["1", "2"])),
                                           expecting: ExpectedContext(exactly: v.context))
        #expect(opened.payload == v.payload)
        #expect(opened.record.created == v.created)
        if let pw = v.slots.first(where: { $0.type == 2 })?.passphrase {
            let byPassphrase = try AtRestRecord.open(v.record, keys: RecordKeys(passphrase: Array(pw.utf8)))
            #expect(byPassphrase.payload == v.payload)
        }
    }

    /// Each tampered or mismatched record is refused with its own error code; nothing of the plaintext leaks.
    @Test(arguments: Vectors.shared.negative)
    func negative(_ v: Vectors.Negative) {
        let keys = RecordKeys(keyring: v.keys.isEmpty ? nil : Self.vectors.keyring(v.keys), passphrase: v.passphrase.map { Array($0.utf8) })
        do {
            let opened = try AtRestRecord.open(v.record, keys: keys, expecting: v.expect)
            Issue.record("accepted: \(opened.record.context.name)")
        } catch {
            #expect(error.code.name == v.error, "\(v.name): \(error.message)")
            #expect(!error.description.contains("\n"))
        }
    }

    /// A record never opens with a retired key, even though the key id matches.
    @Test func retiredKeyIsKeptOut() throws {
        let v = Self.vectors
        var ring = v.keyring(["2", "1"])  // 1 is decrypt-only
        _ = try AtRestRecord.open(v.positive[0].record, keys: RecordKeys(keyring: ring))
        try ring.retire(KeyID(bytes: v.keys["1"]!.kid))
        #expect(throws: RecordError.self) { try AtRestRecord.open(v.positive[0].record, keys: RecordKeys(keyring: ring)) }
        do {
            _ = try AtRestRecord.open(v.positive[0].record, keys: RecordKeys(keyring: ring))
        } catch {
            #expect(error.code == .noUsableSlot)
        }
    }

    /// Random single-bit flips anywhere in a record never crash and never yield a payload.
    @Test func everyBitFlipIsRejected() throws {
        let v = Self.vectors.positive[1]
        let ring = Self.vectors.keyring(["1", "2"])
        var accepted = 0
        for i in 0..<v.record.count {
            var b = v.record
            b[i] ^= UInt8(1) << UInt8(i % 8)
            if (try? AtRestRecord.open(b, keys: RecordKeys(keyring: ring))) != nil { accepted += 1 }
        }
        #expect(accepted == 0)
    }

    /// Every truncation of a record is refused (never a crash, never a payload).
    @Test func everyTruncationIsRejected() {
        let v = Self.vectors.positive[0]
        let ring = Self.vectors.keyring(["1"])
        var codes = Set<String>()
        for length in 0..<v.record.count {
            do {
                _ = try AtRestRecord.open(Array(v.record.prefix(length)), keys: RecordKeys(keyring: ring))
                Issue.record("a record cut to \(length) bytes opened")
            } catch {
                codes.insert(error.code.name)
            }
        }
        #expect(codes == ["not-a-record", "truncated"])
    }

    /// The independent Python implementation checks the same vector file.
    @Test func pythonChecksTheVectors() throws {
        let r = try python([referenceScript, "check", testSourceDirectory.appendingPathComponent("Vectors/ksr1-vectors.json").path])
        #expect(r.code == 0, "\(String(decoding: r.stdout, as: UTF8.self)) \(r.stderr)")
        #expect(String(decoding: r.stdout, as: UTF8.self).contains(", 0 failures"))
    }
}
