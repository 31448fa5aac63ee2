internal import CDynSecretOpenSSL
#if canImport(Glibc)
internal import Glibc
#endif

/// An X.509 certificate parsed by OpenSSL.
public final class X509Certificate: @unchecked Sendable {
    // @unchecked Sendable: the X509 handle is owned exclusively by this object, never mutated after
    // init, and only read through OpenSSL functions that are safe for concurrent readers.
    fileprivate let handle: OpaquePointer

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit { X509_free(handle) }

    /// Every `CERTIFICATE` block of PEM text, in order; throws when there is none or one does not parse.
    public static func parseChain(pem: [UInt8]) throws(CryptoError) -> [X509Certificate] {
        let blocks = PEMBlocks.find(pem)
        let certBlocks = blocks.filter { $0.label == "CERTIFICATE" || $0.label == "TRUSTED CERTIFICATE" || $0.label == "X509 CERTIFICATE" }
        guard !certBlocks.isEmpty else {
            throw CryptoError(operation: "certificate parsing", openSSLErrors: [
                blocks.isEmpty ? "no PEM block found" : "no CERTIFICATE block (found \(blocks.map(\.label).joined(separator: ", ")))",
            ])
        }
        var out: [X509Certificate] = []
        for (i, block) in certBlocks.enumerated() {
            let x = try withMemoryBIO(block.text) { bio in PEM_read_bio_X509(bio, nil, nil, nil) }
            guard let x else {
                ERR_clear_error()
                throw CryptoError(operation: "certificate parsing", openSSLErrors: ["certificate \(i + 1) does not parse"])
            }
            out.append(X509Certificate(handle: x))
        }
        return out
    }

    /// The subject in OpenSSL's one-line form (`/CN=example.com/O=Example`).
    public var subject: String {
        guard let name = X509_get_subject_name(handle) else { return "" }
        var buffer = [CChar](repeating: 0, count: 512)
        guard X509_NAME_oneline(name, &buffer, Int32(buffer.count)) != nil else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Start of validity, seconds since the Unix epoch.
    public var notBefore: Int64 { Self.epochSeconds(X509_get0_notBefore(handle)) }

    /// End of validity, seconds since the Unix epoch.
    public var notAfter: Int64 { Self.epochSeconds(X509_get0_notAfter(handle)) }

    static func epochSeconds(_ time: UnsafePointer<ASN1_TIME>?) -> Int64 {
        guard let time else { return 0 }
        var t = tm()
        guard ASN1_TIME_to_tm(time, &t) == 1 else { return 0 }
        return Int64(timegm(&t))
    }

    /// Whether `key` is the private key of this certificate's public key.
    public func matches(_ key: PrivateKey) -> Bool {
        let ok = X509_check_private_key(handle, key.handle) == 1
        ERR_clear_error()  // a mismatch leaves an error on the queue
        return ok
    }
}

/// A private key parsed by OpenSSL (PKCS#1, SEC1 or PKCS#8 PEM). Encrypted keys are refused, never prompted for.
public final class PrivateKey: @unchecked Sendable {
    // @unchecked Sendable: the EVP_PKEY is owned exclusively and only read after init.
    fileprivate let handle: OpaquePointer

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit { EVP_PKEY_free(handle) }

    /// Parses the first private key in PEM text.
    public convenience init(pem: [UInt8]) throws(CryptoError) {
        let blocks = PEMBlocks.find(pem)
        guard let block = blocks.first(where: { $0.label.hasSuffix("PRIVATE KEY") }) else {
            throw CryptoError(operation: "private key parsing", openSSLErrors: [
                blocks.isEmpty ? "no PEM block found" : "no PRIVATE KEY block (found \(blocks.map(\.label).joined(separator: ", ")))",
            ])
        }
        if block.label == "ENCRYPTED PRIVATE KEY" || block.headers.contains("Proc-Type: 4,ENCRYPTED") {
            throw CryptoError(operation: "private key parsing", openSSLErrors: ["the key is encrypted with a passphrase"])
        }
        // The password callback refuses, so OpenSSL never prompts on a terminal.
        let key = try withMemoryBIO(block.text) { bio in PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in 0 }, nil) }
        guard let key else {
            ERR_clear_error()
            throw CryptoError(operation: "private key parsing", openSSLErrors: ["the \(block.label) block does not parse"])
        }
        self.init(handle: key)
    }

    /// An RSASSA-PKCS1-v1_5 signature with SHA-256 (JWS `RS256`, RFC 7518 §3.3) of `message`; RSA keys only.
    public func signRS256(_ message: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard algorithm == "RSA" else { throw CryptoError(operation: "RS256 signing", openSSLErrors: ["the key is \(algorithm), not RSA"]) }
        guard let ctx = EVP_MD_CTX_new() else { throw CryptoError.drain("RS256 signing") }
        defer { EVP_MD_CTX_free(ctx) }
        // RSA keys sign with PKCS#1 v1.5 padding unless told otherwise.
        guard EVP_DigestSignInit(ctx, nil, EVP_sha256(), nil, handle) == 1 else { throw CryptoError.drain("RS256 signing init") }
        var length = 0
        let sized = message.withUnsafeBufferPointer { m in EVP_DigestSign(ctx, nil, &length, m.baseAddress, m.count) }
        guard sized == 1, length > 0 else { throw CryptoError.drain("RS256 signing") }
        var signature = [UInt8](repeating: 0, count: length)
        let ok = message.withUnsafeBufferPointer { m in
            signature.withUnsafeMutableBufferPointer { out in EVP_DigestSign(ctx, out.baseAddress, &length, m.baseAddress, m.count) }
        }
        guard ok == 1 else { throw CryptoError.drain("RS256 signing") }
        return Array(signature.prefix(length))
    }

    /// The algorithm name, such as `RSA`, `EC` or `ED25519`.
    public var algorithm: String {
        guard let name = EVP_PKEY_get0_type_name(handle) else { return "unknown" }
        return String(cString: name)
    }
}

/// PEM framing (RFC 7468), parsed without OpenSSL so that labels and headers can be inspected.
enum PEMBlocks {
    struct Block {
        var label: String
        var headers: String
        /// The whole block, BEGIN to END line, for OpenSSL.
        var text: [UInt8]
    }

    static func find(_ bytes: [UInt8]) -> [Block] {
        let text = String(decoding: bytes, as: UTF8.self)
        var blocks: [Block] = []
        var current: (label: String, lines: [Substring])?
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.hasPrefix("-----BEGIN "), trimmed.hasSuffix("-----") {
                current = (String(trimmed.dropFirst(11).dropLast(5)), [trimmed])
            } else if let c = current {
                current!.lines.append(trimmed)
                if trimmed == "-----END \(c.label)-----" {
                    let headers = c.lines.filter { $0.contains(": ") }.joined(separator: "\n")
                    blocks.append(Block(label: c.label, headers: headers, text: Array((current!.lines.joined(separator: "\n") + "\n").utf8)))
                    current = nil
                }
            }
        }
        return blocks
    }
}

/// Runs `body` with a read-only memory BIO over `bytes`.
private func withMemoryBIO<T>(_ bytes: [UInt8], _ body: (OpaquePointer) -> T) throws(CryptoError) -> T {
    let result: T? = bytes.withUnsafeBytes { raw in
        guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
        defer { BIO_free(bio) }
        return body(bio)
    }
    guard let result else { throw CryptoError.drain("memory BIO") }
    return result
}
