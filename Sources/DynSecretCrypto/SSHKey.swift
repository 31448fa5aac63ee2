internal import CDynSecretOpenSSL

/// SSH private keys as `kubernetes.io/ssh-auth` Secrets hold them.
public enum SSHPrivateKey {
    /// The key type (`ssh-ed25519`, `ssh-rsa`, `RSA`, `EC`, …) of an unencrypted SSH private key in OpenSSH or PEM format.
    ///
    /// Throws for anything else, including passphrase-protected keys, which no Secret consumer can unlock.
    public static func inspect(_ bytes: [UInt8]) throws(CryptoError) -> String {
        let blocks = PEMBlocks.find(bytes)
        guard let block = blocks.first else {
            throw CryptoError(operation: "SSH key parsing", openSSLErrors: ["no PEM block found (expected -----BEGIN OPENSSH PRIVATE KEY-----)"])
        }
        if block.label != "OPENSSH PRIVATE KEY" {
            do {
                return try PrivateKey(pem: bytes).algorithm
            } catch {
                throw CryptoError(operation: "SSH key parsing", openSSLErrors: error.openSSLErrors)
            }
        }
        let body = block.text.split(separator: UInt8(ascii: "\n")).dropFirst().dropLast().joined()
        guard let raw = decodeBase64(Array(body)) else {
            throw CryptoError(operation: "SSH key parsing", openSSLErrors: ["the OPENSSH PRIVATE KEY block is not valid base64"])
        }
        return try parseOpenSSH(raw)
    }

    /// The `openssh-key-v1` container (PROTOCOL.key in OpenSSH).
    static func parseOpenSSH(_ raw: [UInt8]) throws(CryptoError) -> String {
        func fail(_ why: String) -> CryptoError { CryptoError(operation: "SSH key parsing", openSSLErrors: [why]) }
        var r = Reader(bytes: raw[...])
        let magic = Array("openssh-key-v1".utf8) + [0]
        guard raw.starts(with: magic) else { throw fail("not an openssh-key-v1 key") }
        r.bytes = r.bytes.dropFirst(magic.count)
        guard let cipher = r.string(), let kdf = r.string(), r.string() != nil, let count = r.u32() else { throw fail("truncated key header") }
        guard count == 1 else { throw fail("expected one key, found \(count)") }
        guard let publicKey = r.string(), let privateSection = r.string(), r.bytes.isEmpty else { throw fail("truncated key") }
        var pub = Reader(bytes: publicKey[...])
        guard let pubType = pub.string() else { throw fail("truncated public key") }
        let type = String(decoding: pubType, as: UTF8.self)
        let cipherName = String(decoding: cipher, as: UTF8.self)
        guard cipherName == "none" else {
            throw fail("the key is encrypted with a passphrase (\(cipherName), kdf \(String(decoding: kdf, as: UTF8.self))); nothing reading an ssh-auth Secret can unlock it")
        }
        var priv = Reader(bytes: privateSection[...])
        guard let c1 = priv.u32(), let c2 = priv.u32(), c1 == c2 else { throw fail("check integers differ: the private section is corrupt") }
        guard let privType = priv.string(), privType == pubType else { throw fail("the private key type does not match the public key type") }
        return type
    }

    private struct Reader {
        var bytes: ArraySlice<UInt8>

        mutating func u32() -> UInt32? {
            guard bytes.count >= 4 else { return nil }
            let v = bytes.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            bytes = bytes.dropFirst(4)
            return v
        }

        mutating func string() -> ArraySlice<UInt8>? {
            guard let n = u32(), bytes.count >= Int(n) else { return nil }
            let s = bytes.prefix(Int(n))
            bytes = bytes.dropFirst(Int(n))
            return s
        }
    }

    /// Standard base64 through OpenSSL's `EVP_DecodeBlock`, trimming the padding it leaves.
    private static func decodeBase64(_ text: [UInt8]) -> [UInt8]? {
        let clean = text.filter { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }
        guard !clean.isEmpty, clean.count % 4 == 0 else { return nil }
        var out = [UInt8](repeating: 0, count: clean.count / 4 * 3)
        let n = clean.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { EVP_DecodeBlock($0.baseAddress, input.baseAddress, Int32(input.count)) }
        }
        guard n >= 0 else { return nil }
        let padding = clean.suffix(2).filter { $0 == UInt8(ascii: "=") }.count
        return Array(out.prefix(Int(n) - padding))
    }
}
