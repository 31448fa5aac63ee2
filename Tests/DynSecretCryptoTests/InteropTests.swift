import DynSecretCore
import Foundation
import Testing
@testable import DynSecretCrypto

/// dynsecret and the independent Python implementation (written from docs/at-rest-format.md) read each other's records.
@Suite struct InteropTests {
    static func kekArgument(_ ring: Keyring) -> String {
        let k = ring.primary!
        return "\(k.id):\(hexString(k.material!.copyBytes()))"
    }

    @Test(arguments: [0, 1, 255, 4096, 1 << 20])
    func pythonDecryptsSwiftRecords(valueSize: Int) throws {
        let dir = try TempDirectory()
        let ring = try Keyring.generate(now: "t")
        var value = [UInt8](repeating: 0, count: valueSize)
        for i in value.indices { value[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        let payload = RecordPayload(type: "kubernetes.io/tls", data: ["tls.key": value, "tls.crt": Array(canary.utf8), "ünïcode": []])
        let context = RecordContext(storeID: "s1", namespace: "prod", name: "web-tls", uid: "u-1", generation: 99)
        let record = try AtRestRecord.seal(payload, context: context, keyring: ring, created: 1_764_115_200)
        let path = dir.path + "/r.ksr1"
        try AtomicFile.write(record, to: path, durable: false)

        let r = try python([referenceScript, "decrypt", path, "--kek", Self.kekArgument(ring), "--namespace", "prod", "--name", "web-tls"])
        #expect(r.code == 0, "\(String(decoding: r.stdout, as: UTF8.self)) \(r.stderr)")
        let json = try JSONParser.parse(r.stdout)
        #expect(json["type"]?.stringValue == "kubernetes.io/tls")
        #expect(json["context"]?["generation"] == .number("99"))
        #expect(json["context"]?["store_id"]?.stringValue == "s1")
        #expect(Base64.decode(json["data"]?["tls.key"]?.stringValue ?? "") == value)
        #expect(Base64.decode(json["data"]?["ünïcode"]?.stringValue ?? "x") == [])

        // The Python reader refuses the record when bound elsewhere, as dynsecret does.
        let wrong = try python([referenceScript, "decrypt", path, "--kek", Self.kekArgument(ring), "--namespace", "dev"])
        #expect(wrong.code == 1)
        #expect(String(decoding: wrong.stdout, as: UTF8.self).hasPrefix("error context-mismatch"))
    }

    @Test func pythonDecryptsAPassphraseSlot() throws {
        let dir = try TempDirectory()
        let ring = try Keyring.generate(now: "t")
        let pw = "e\u{301}té"  // decomposed é; both sides normalize to NFC before scrypt
        let nfc = Array(pw.precomposedStringWithCanonicalMapping.utf8)
        let record = try AtRestRecord.seal(RecordPayload(type: "Opaque", data: ["a": [1]]), context: RecordContext(namespace: "n", name: "x"),
                                           keyring: ring, passphrase: nfc, scryptLogN: KSR1.minScryptLogN, created: 0)
        try AtomicFile.write(record, to: dir.path + "/r", durable: false)
        try AtomicFile.write(Array((pw + "\n").utf8), to: dir.path + "/pw", durable: false)
        let r = try python([referenceScript, "decrypt", dir.path + "/r", "--passphrase-file", dir.path + "/pw"])
        #expect(r.code == 0, "\(String(decoding: r.stdout, as: UTF8.self)) \(r.stderr)")
        #expect(try JSONParser.parse(r.stdout)["data"]?["a"]?.stringValue == "AQ==")
    }

    @Test func swiftDecryptsPythonRecords() throws {
        let ring = try Keyring.generate(now: "t")
        let r = try python([referenceScript, "seal", "--kek", Self.kekArgument(ring), "--namespace", "ops", "--name", "token",
                            "--uid", "abc", "--generation", "5", "--type", "bootstrap.kubernetes.io/token",
                            "--data", "token-id=\(Base64.encode(Array("abcdef".utf8)))", "--data", "token-secret=\(Base64.encode(Array(canary.utf8)))"])
        #expect(r.code == 0, "\(r.stderr)")
        let opened = try AtRestRecord.open(r.stdout, keys: RecordKeys(keyring: ring),
                                           expecting: ExpectedContext(storeID: "", namespace: "ops", name: "token", uid: "abc", generation: 5))
        #expect(opened.payload.type == "bootstrap.kubernetes.io/token")
        #expect(opened.payload.data == ["token-id": Array("abcdef".utf8), "token-secret": Array(canary.utf8)])
    }
}
