import Testing
@testable import DynSecretCrypto

@Suite struct DigestTests {
    /// FIPS 180-4 example vectors (NIST CSRC "SHA256.pdf", "SHA2_Additional.pdf").
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func sha256(message: String, hex: String) throws {
        #expect(try SHA256.hex(Array(message.utf8)) == hex)
    }

    @Test func sha256Million() throws {
        #expect(try SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)) ==
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func randomBytes() throws {
        let a = try SecureRandom.bytes(32)
        let b = try SecureRandom.bytes(32)
        #expect(a.count == 32 && b.count == 32 && a != b)
        #expect(try SecureRandom.bytes(0).isEmpty)
    }

    @Test func libraryIsOpenSSL3() {
        #expect(OpenSSLLibrary.version.hasPrefix("OpenSSL 3."))
    }
}
