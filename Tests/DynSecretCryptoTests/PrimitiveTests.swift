import Testing
@testable import DynSecretCrypto

func secret(_ hexText: String) -> SecretBytes {
    var b = hex(hexText)
    return SecretBytes(consuming: &b)
}

@Suite struct PrimitiveTests {
    /// NIST GCM specification test cases 13–16 (AES-256).
    @Test(arguments: [
        ("0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"),
        ("0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000", "",
         "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"),
        ("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
         "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
         "feedfacedeadbeeffeedfacedeadbeefabaddad2",
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
         "76fc6ece0f4e1768cddf8853bb2d551b"),
    ])
    func aesGCM(key: String, nonce: String, plaintext: String, aad: String, ciphertext: String, tag: String) throws {
        let sealed = try AES256GCM.seal(key: secret(key), nonce: hex(nonce), aad: hex(aad), plaintext: hex(plaintext))
        #expect(hexString(sealed) == ciphertext + tag)
        #expect(try AES256GCM.open(key: secret(key), nonce: hex(nonce), aad: hex(aad), sealed: sealed) == hex(plaintext))
        var bad = sealed
        bad[bad.count - 1] ^= 1
        #expect(try AES256GCM.open(key: secret(key), nonce: hex(nonce), aad: hex(aad), sealed: bad) == nil)
        #expect(try AES256GCM.open(key: secret(key), nonce: hex(nonce), aad: hex(aad) + [0], sealed: sealed) == nil)
        #expect(try AES256GCM.open(key: secret(key), nonce: hex(nonce), aad: hex(aad), sealed: Array(sealed.prefix(15))) == nil)
    }

    @Test func aesGCMRejectsBadSizes() {
        #expect(throws: CryptoError.self) { try AES256GCM.seal(key: secret("00"), nonce: [UInt8](repeating: 0, count: 12), aad: [], plaintext: []) }
        #expect(throws: CryptoError.self) { try AES256GCM.seal(key: secret(String(repeating: "00", count: 32)), nonce: [0], aad: [], plaintext: []) }
    }

    /// RFC 5869 appendix A, test cases 1 and 3 (SHA-256).
    @Test func hkdf() throws {
        let okm = try HKDF.sha256(key: secret("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"), salt: hex("000102030405060708090a0b0c"),
                                  info: hex("f0f1f2f3f4f5f6f7f8f9"), length: 42)
        #expect(hexString(okm.copyBytes()) == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        let noSalt = try HKDF.sha256(key: secret("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"), salt: [], info: [], length: 42)
        #expect(hexString(noSalt.copyBytes()) == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }

    /// RFC 4231 test cases 1 and 2.
    @Test func hmac() throws {
        #expect(hexString(try HMACSHA256.mac(key: secret("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"), message: Array("Hi There".utf8)))
            == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        var jefe = Array("Jefe".utf8)
        #expect(hexString(try HMACSHA256.mac(key: SecretBytes(consuming: &jefe), message: Array("what do ya want for nothing?".utf8)))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(jefe.isEmpty)
    }

    /// RFC 7914 section 12, vectors 1–3; the third needs 16 MiB, the fourth (N = 2^20) 1 GiB and is skipped for time.
    @Test(arguments: [
        ("", "", 4, 1, 1, "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"),
        ("password", "NaCl", 10, 8, 16, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"),
        ("pleaseletmein", "SodiumChloride", 14, 8, 1, "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"),
    ])
    func scrypt(password: String, salt: String, logN: Int, r: Int, p: Int, expected: String) throws {
        let key = try Scrypt.derive(password: Array(password.utf8), salt: Array(salt.utf8), logN: logN, r: r, p: p, length: 64)
        #expect(hexString(key.copyBytes()) == expected)
    }

    /// The memory cap is explicit: the recommended cost (N = 2^17, r = 8: 128 MiB) works although OpenSSL's default cap is 32 MiB.
    @Test func scryptAboveOpenSSLDefaultCap() throws {
        let key = try Scrypt.derive(password: Array("pw".utf8), salt: Array("salt".utf8), logN: 17, r: 8, p: 1)
        #expect(key.count == 32)
        #expect(throws: CryptoError.self) { try Scrypt.derive(password: [], salt: [], logN: 0, r: 8, p: 1) }
    }

    @Test func constantTimeCompare() {
        #expect(ConstantTime.equal([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equal([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equal([1, 2, 3], [1, 2]))
        #expect(ConstantTime.equal([], []))
    }

    @Test func cleanse() throws {
        var b: [UInt8] = [1, 2, 3]
        Cleanse.wipe(&b)
        #expect(b.isEmpty)
        let r1 = try SecretBytes.random(count: 32)
        let r2 = try SecretBytes.random(count: 32)
        #expect(!r1.equals(r2) && r1.equals(r1))
    }
}
