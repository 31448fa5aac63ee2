internal import CDynSecretOpenSSL

/// Key material in memory that is wiped (`OPENSSL_cleanse`) when the last reference goes away.
///
/// The bytes live in one heap allocation that is never copied into Swift arrays by this type's own API.
// @unchecked Sendable: the buffer is written only in `init` and read afterwards; no API mutates it.
public final class SecretBytes: @unchecked Sendable {
    private let buffer: UnsafeMutableRawBufferPointer

    /// Copies `bytes` and wipes the caller's array.
    public init(consuming bytes: inout [UInt8]) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { src in
            if let base = src.baseAddress { buffer.baseAddress!.copyMemory(from: base, byteCount: src.count) }
        }
        self.buffer = buffer
        count = bytes.count
        Cleanse.wipe(&bytes)
    }

    /// `count` bytes written by `fill`.
    init(count: Int, fill: (UnsafeMutableRawBufferPointer) throws(CryptoError) -> Void) throws(CryptoError) {
        buffer = .allocate(byteCount: max(count, 1), alignment: 16)
        self.count = count
        do {
            try fill(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        } catch {
            OPENSSL_cleanse(buffer.baseAddress, buffer.count)
            buffer.deallocate()
            throw error
        }
    }

    /// Fresh random key material from OpenSSL's private DRBG.
    public static func random(count: Int) throws(CryptoError) -> SecretBytes {
        try SecretBytes(count: count) { (b) throws(CryptoError) in
            guard count == 0 || RAND_priv_bytes(b.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(count)) == 1 else {
                throw CryptoError.drain("random key generation")
            }
        }
    }

    public let count: Int

    /// Calls `body` with the bytes; the pointer must not escape.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
    }

    /// A copy as an array, for writing the key to a file; wipe it after use with `Cleanse.wipe`.
    public func copyBytes() -> [UInt8] { withUnsafeBytes { Array($0) } }

    /// Constant-time equality of the key bytes.
    public func equals(_ other: SecretBytes) -> Bool {
        withUnsafeBytes { a in other.withUnsafeBytes { b in ConstantTime.equal(a, b) } }
    }

    deinit {
        OPENSSL_cleanse(buffer.baseAddress, buffer.count)
        buffer.deallocate()
    }
}

/// Wiping of key material.
public enum Cleanse {
    /// Overwrites `bytes` with zeros in a way the optimizer cannot remove, then empties the array.
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
        bytes.removeAll()
    }
}

/// Constant-time comparison.
public enum ConstantTime {
    /// Whether `a` and `b` are equal, in time that depends only on their lengths.
    public static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        if a.count == 0 { return true }
        return CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0
    }

    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in equal(x, y) } }
    }
}

extension SecureRandom {
    /// Fills `buffer` from OpenSSL's public DRBG (nonces and salts).
    static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard buffer.count > 0 else { return }
        guard RAND_bytes(buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(buffer.count)) == 1 else {
            throw CryptoError.drain("random generation")
        }
    }
}

/// An `EVP_CIPHER_CTX`, freed on deinit.
final class CipherContext {
    let pointer: OpaquePointer

    init() throws(CryptoError) {
        guard let p = EVP_CIPHER_CTX_new() else { throw CryptoError.drain("EVP_CIPHER_CTX_new") }
        pointer = p
    }

    deinit { EVP_CIPHER_CTX_free(pointer) }
}

/// AES-256-GCM with 12-byte nonces and 16-byte tags (NIST SP 800-38D) through OpenSSL EVP.
public enum AES256GCM {
    public static let keySize = 32
    public static let nonceSize = 12
    public static let tagSize = 16
    /// EVP's update calls take an `int` length.
    private static let chunk = 1 << 30

    /// Encrypts `buffer` in place and writes the tag to `tag`.
    static func seal(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                     inPlace buffer: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard key.count == keySize, nonce.count == nonceSize, tag.count == tagSize else {
            throw CryptoError(operation: "AES-256-GCM seal: bad key, nonce or tag size", openSSLErrors: [])
        }
        let ctx = try CipherContext()
        guard EVP_EncryptInit_ex(ctx.pointer, EVP_aes_256_gcm(), nil, u8(key), u8(nonce)) == 1 else {
            throw CryptoError.drain("AES-256-GCM seal init")
        }
        var outLength: Int32 = 0
        try feedAAD(ctx, aad, &outLength, encrypt: true)
        var offset = 0
        while offset < buffer.count {
            let n = min(chunk, buffer.count - offset)
            let p = buffer.baseAddress!.advanced(by: offset).assumingMemoryBound(to: UInt8.self)
            guard EVP_EncryptUpdate(ctx.pointer, p, &outLength, p, Int32(n)) == 1, outLength == Int32(n) else {
                throw CryptoError.drain("AES-256-GCM seal")
            }
            offset += n
        }
        var scratch = [UInt8](repeating: 0, count: 16)
        guard EVP_EncryptFinal_ex(ctx.pointer, &scratch, &outLength) == 1 else {
            throw CryptoError.drain("AES-256-GCM seal final")
        }
        guard EVP_CIPHER_CTX_ctrl(ctx.pointer, EVP_CTRL_AEAD_GET_TAG, Int32(tagSize), tag.baseAddress) == 1 else {
            throw CryptoError.drain("AES-256-GCM get tag")
        }
    }

    /// Decrypts `buffer` in place; returns false when the tag does not authenticate (the buffer then holds garbage
    /// that the caller must wipe and discard).
    static func open(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                     inPlace buffer: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer) throws(CryptoError) -> Bool {
        guard key.count == keySize, nonce.count == nonceSize, tag.count == tagSize else {
            throw CryptoError(operation: "AES-256-GCM open: bad key, nonce or tag size", openSSLErrors: [])
        }
        let ctx = try CipherContext()
        guard EVP_DecryptInit_ex(ctx.pointer, EVP_aes_256_gcm(), nil, u8(key), u8(nonce)) == 1 else {
            throw CryptoError.drain("AES-256-GCM open init")
        }
        var outLength: Int32 = 0
        try feedAAD(ctx, aad, &outLength, encrypt: false)
        var offset = 0
        while offset < buffer.count {
            let n = min(chunk, buffer.count - offset)
            let p = buffer.baseAddress!.advanced(by: offset).assumingMemoryBound(to: UInt8.self)
            guard EVP_DecryptUpdate(ctx.pointer, p, &outLength, p, Int32(n)) == 1, outLength == Int32(n) else {
                throw CryptoError.drain("AES-256-GCM open")
            }
            offset += n
        }
        guard EVP_CIPHER_CTX_ctrl(ctx.pointer, EVP_CTRL_AEAD_SET_TAG, Int32(tagSize), UnsafeMutableRawPointer(mutating: tag.baseAddress)) == 1 else {
            throw CryptoError.drain("AES-256-GCM set tag")
        }
        var scratch = [UInt8](repeating: 0, count: 16)
        let ok = EVP_DecryptFinal_ex(ctx.pointer, &scratch, &outLength)
        // A failed tag check queues no error in OpenSSL 3; clear anything that was queued regardless.
        if ok != 1 { ERR_clear_error() }
        return ok == 1
    }

    private static func feedAAD(_ ctx: CipherContext, _ aad: UnsafeRawBufferPointer, _ outLength: inout Int32, encrypt: Bool) throws(CryptoError) {
        var offset = 0
        while offset < aad.count {
            let n = min(chunk, aad.count - offset)
            let p = aad.baseAddress!.advanced(by: offset).assumingMemoryBound(to: UInt8.self)
            let ok = encrypt ? EVP_EncryptUpdate(ctx.pointer, nil, &outLength, p, Int32(n)) : EVP_DecryptUpdate(ctx.pointer, nil, &outLength, p, Int32(n))
            guard ok == 1 else { throw CryptoError.drain("AES-256-GCM associated data") }
            offset += n
        }
    }

    /// `plaintext` sealed: ciphertext followed by the 16-byte tag.
    public static func seal(key: SecretBytes, nonce: [UInt8], aad: [UInt8], plaintext: [UInt8]) throws(CryptoError) -> [UInt8] {
        var out = plaintext + [UInt8](repeating: 0, count: tagSize)
        let n = plaintext.count
        try withBytes(key) { (k) throws(CryptoError) in
            try withBytes(nonce) { (iv) throws(CryptoError) in
                try withBytes(aad) { (a) throws(CryptoError) in
                    try withMutableBytes(&out) { (o) throws(CryptoError) in
                        try seal(key: k, nonce: iv, aad: a, inPlace: UnsafeMutableRawBufferPointer(rebasing: o[0..<n]),
                                 tag: UnsafeMutableRawBufferPointer(rebasing: o[n...]))
                    }
                }
            }
        }
        return out
    }

    /// The plaintext of `sealed` (ciphertext ‖ tag), or nil when it does not authenticate.
    public static func open(key: SecretBytes, nonce: [UInt8], aad: [UInt8], sealed: [UInt8]) throws(CryptoError) -> [UInt8]? {
        guard sealed.count >= tagSize else { return nil }
        let n = sealed.count - tagSize
        var out = Array(sealed[0..<n])
        let tag = Array(sealed[n...])
        let ok = try withBytes(key) { (k) throws(CryptoError) in
            try withBytes(nonce) { (iv) throws(CryptoError) in
                try withBytes(aad) { (a) throws(CryptoError) in
                    try withBytes(tag) { (t) throws(CryptoError) in
                        try withMutableBytes(&out) { (o) throws(CryptoError) in
                            try open(key: k, nonce: iv, aad: a, inPlace: o, tag: t)
                        }
                    }
                }
            }
        }
        guard ok else {
            Cleanse.wipe(&out)
            return nil
        }
        return out
    }
}

/// HKDF (RFC 5869) with SHA-256.
public enum HKDF {
    /// `length` bytes of output key material. An empty salt means the RFC's default (32 zero bytes).
    public static func sha256(key: UnsafeRawBufferPointer, salt: [UInt8], info: [UInt8], length: Int) throws(CryptoError) -> SecretBytes {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nil) else { throw CryptoError.drain("HKDF context") }
        defer { EVP_PKEY_CTX_free(ctx) }
        let effectiveSalt = salt.isEmpty ? [UInt8](repeating: 0, count: 32) : salt
        guard EVP_PKEY_derive_init(ctx) == 1,
              EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) == 1,
              EVP_PKEY_CTX_set1_hkdf_salt(ctx, effectiveSalt, Int32(effectiveSalt.count)) == 1,
              EVP_PKEY_CTX_set1_hkdf_key(ctx, u8(key), Int32(key.count)) == 1,
              EVP_PKEY_CTX_add1_hkdf_info(ctx, info, Int32(info.count)) == 1
        else { throw CryptoError.drain("HKDF-SHA256 setup") }
        return try SecretBytes(count: length) { (out) throws(CryptoError) in
            var n = length
            guard EVP_PKEY_derive(ctx, u8m(out), &n) == 1, n == length else { throw CryptoError.drain("HKDF-SHA256 derive") }
        }
    }

    public static func sha256(key: SecretBytes, salt: [UInt8], info: [UInt8], length: Int = 32) throws(CryptoError) -> SecretBytes {
        try withBytes(key) { (k) throws(CryptoError) in try sha256(key: k, salt: salt, info: info, length: length) }
    }
}

/// HMAC (RFC 2104) with SHA-256.
public enum HMACSHA256 {
    public static func mac(key: SecretBytes, message: UnsafeRawBufferPointer) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var n: UInt32 = 0
        let ok = key.withUnsafeBytes { k in
            out.withUnsafeMutableBufferPointer { o in
                HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), u8(message), message.count, o.baseAddress, &n)
            }
        }
        guard ok != nil, n == 32 else { throw CryptoError.drain("HMAC-SHA256") }
        return out
    }

    public static func mac(key: SecretBytes, message: [UInt8]) throws(CryptoError) -> [UInt8] {
        try withBytes(message) { (m) throws(CryptoError) in try mac(key: key, message: m) }
    }
}

/// scrypt (RFC 7914) with an explicit memory limit.
public enum Scrypt {
    /// The memory scrypt needs for these parameters: 128·r·N·p bytes plus the block buffer.
    public static func memoryNeeded(logN: Int, r: Int, p: Int) -> UInt64 {
        128 * UInt64(r) * (UInt64(1) << UInt64(logN)) * UInt64(p) + 128 * UInt64(r) * UInt64(p) + 4096
    }

    /// A 32-byte (or `length`-byte) key from `password`; memory is capped at exactly what the parameters need
    /// (OpenSSL's own default cap of 32 MiB would reject the recommended costs).
    public static func derive(password: [UInt8], salt: [UInt8], logN: Int, r: Int, p: Int, length: Int = 32) throws(CryptoError) -> SecretBytes {
        guard (1...30).contains(logN), r > 0, p > 0 else {
            throw CryptoError(operation: "scrypt: invalid parameters logN=\(logN) r=\(r) p=\(p)", openSSLErrors: [])
        }
        let maxmem = memoryNeeded(logN: logN, r: r, p: p) * 2
        return try SecretBytes(count: length) { (out) throws(CryptoError) in
            let ok = password.withUnsafeBufferPointer { pw in
                salt.withUnsafeBufferPointer { s in
                    EVP_PBE_scrypt(pw.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, pw.count,
                                   s.baseAddress, s.count, UInt64(1) << UInt64(logN), UInt64(r), UInt64(p), maxmem,
                                   u8m(out), length)
                }
            }
            guard ok == 1 else { throw CryptoError.drain("scrypt") }
        }
    }
}

@inline(__always) func u8(_ b: UnsafeRawBufferPointer) -> UnsafePointer<UInt8>? {
    b.baseAddress?.assumingMemoryBound(to: UInt8.self)
}

@inline(__always) func u8m(_ b: UnsafeMutableRawBufferPointer) -> UnsafeMutablePointer<UInt8>? {
    b.baseAddress?.assumingMemoryBound(to: UInt8.self)
}

/// `Array.withUnsafeBytes` with the closure's typed error preserved.
@inline(__always) func withBytes<R, E: Error>(_ a: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let r: Result<R, E> = a.withUnsafeBytes { p in Result { () throws(E) -> R in try body(p) } }
    return try r.get()
}

@inline(__always) func withBytes<R, E: Error>(_ s: SecretBytes, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    try s.withUnsafeBytes(body)
}

/// `Array.withUnsafeMutableBytes` with the closure's typed error preserved.
@inline(__always) func withMutableBytes<R, E: Error>(_ a: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let r: Result<R, E> = a.withUnsafeMutableBytes { p in Result { () throws(E) -> R in try body(p) } }
    return try r.get()
}
