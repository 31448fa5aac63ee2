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
    func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
    }

    /// A copy as an array, for writing the key to a file; wipe it after use with `Cleanse.wipe`.
    func copyBytes() -> [UInt8] { withUnsafeBytes { Array($0) } }

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
    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
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

/// Algorithms fetched once from OpenSSL's default provider: an implicit fetch on every operation (what
/// `EVP_aes_256_gcm()` or a digest name triggers in OpenSSL 3) costs more than sealing a 2 KiB record.
// @unchecked Sendable: fetched EVP_CIPHER/EVP_MAC objects are immutable and reference-counted atomically, and the HMAC
// template context is only ever read (EVP_MAC_CTX_dup takes a const pointer); OpenSSL documents both as shareable.
final class Algorithms: @unchecked Sendable {
    let aes256GCM: OpaquePointer
    let hmacTemplate: OpaquePointer

    private init() throws(CryptoError) {
        guard let cipher = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil) else { throw CryptoError.drain("fetching AES-256-GCM") }
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else {
            EVP_CIPHER_free(cipher)
            throw CryptoError.drain("fetching HMAC")
        }
        defer { EVP_MAC_free(mac) }
        guard let ctx = EVP_MAC_CTX_new(mac) else {
            EVP_CIPHER_free(cipher)
            throw CryptoError.drain("HMAC context")
        }
        var digest = Array("SHA256".utf8CString)
        let ok = digest.withUnsafeMutableBufferPointer { d in
            "digest".withCString { key in
                var params = [OSSL_PARAM_construct_utf8_string(key, d.baseAddress, 0), OSSL_PARAM_construct_end()]
                return EVP_MAC_CTX_set_params(ctx, &params)
            }
        }
        guard ok == 1 else {
            EVP_MAC_CTX_free(ctx)
            EVP_CIPHER_free(cipher)
            throw CryptoError.drain("HMAC-SHA256 setup")
        }
        aes256GCM = cipher
        hmacTemplate = ctx
    }

    deinit {
        EVP_CIPHER_free(aes256GCM)
        EVP_MAC_CTX_free(hmacTemplate)
    }

    private static let cached: Result<Algorithms, CryptoError> = Result { () throws(CryptoError) in try Algorithms() }

    static func shared() throws(CryptoError) -> Algorithms { try cached.get() }
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

    /// Encrypts `buffer` in place and writes the tag to `tag`.
    static func seal(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                     inPlace buffer: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        _ = try crypt(encrypt: true, key: key, nonce: nonce, aad: aad, input: UnsafeRawBufferPointer(buffer), output: buffer, tag: tag)
    }

    /// Decrypts `buffer` in place; returns false when the tag does not authenticate (the buffer then holds garbage
    /// that the caller must wipe and discard).
    static func open(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                     inPlace buffer: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer) throws(CryptoError) -> Bool {
        try open(key: key, nonce: nonce, aad: aad, input: UnsafeRawBufferPointer(buffer), output: buffer, tag: tag)
    }

    /// Decrypts `input` into `output` (same size, or the same memory); false when the tag does not authenticate.
    static func open(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                     input: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer) throws(CryptoError) -> Bool {
        try crypt(encrypt: false, key: key, nonce: nonce, aad: aad, input: input, output: output,
                  tag: UnsafeMutableRawBufferPointer(mutating: tag))
    }

    private static func crypt(encrypt: Bool, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                              input: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer,
                              tag: UnsafeMutableRawBufferPointer) throws(CryptoError) -> Bool {
        guard input.count == output.count else {
            throw CryptoError(operation: "AES-256-GCM: input and output sizes differ", openSSLErrors: [])
        }
        let stream = try GCMStream(encrypt: encrypt, key: key, nonce: nonce, aad: aad)
        try stream.update(input, into: output)
        if encrypt {
            try stream.sealFinal(tag: tag)
            return true
        }
        return try stream.openFinal(tag: UnsafeRawBufferPointer(tag))
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

/// An `EVP_MAC_CTX` copied from a template, freed on deinit.
final class MACContext {
    let pointer: OpaquePointer

    init(copying template: OpaquePointer) throws(CryptoError) {
        guard let p = EVP_MAC_CTX_dup(template) else { throw CryptoError.drain("HMAC context") }
        pointer = p
    }

    deinit { EVP_MAC_CTX_free(pointer) }
}

/// One AES-256-GCM encryption or decryption fed piece by piece, so records are sealed and opened in a single pass
/// from and into their final buffers. Owns its `EVP_CIPHER_CTX`.
final class GCMStream {
    private let ctx: CipherContext
    private let encrypt: Bool
    /// EVP's update calls take an `int` length.
    private static let chunk = 1 << 30

    init(encrypt: Bool, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer) throws(CryptoError) {
        self.encrypt = encrypt
        let what = encrypt ? "AES-256-GCM seal" : "AES-256-GCM open"
        guard key.count == AES256GCM.keySize, nonce.count == AES256GCM.nonceSize else {
            throw CryptoError(operation: "\(what): bad key or nonce size", openSSLErrors: [])
        }
        let cipher = try Algorithms.shared().aes256GCM
        ctx = try CipherContext()
        guard EVP_CipherInit_ex(ctx.pointer, cipher, nil, u8(key), u8(nonce), encrypt ? 1 : 0) == 1 else {
            throw CryptoError.drain("\(what) init")
        }
        var outLength: Int32 = 0
        var offset = 0
        while offset < aad.count {
            let n = min(Self.chunk, aad.count - offset)
            guard EVP_CipherUpdate(ctx.pointer, nil, &outLength, u8(aad)! + offset, Int32(n)) == 1 else {
                throw CryptoError.drain("AES-256-GCM associated data")
            }
            offset += n
        }
    }

    /// Transforms `input` into `output` (same size; they may be the same memory).
    func update(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard input.count == output.count else { throw CryptoError(operation: "AES-256-GCM: input and output sizes differ", openSSLErrors: []) }
        var offset = 0
        var outLength: Int32 = 0
        while offset < input.count {
            let n = min(Self.chunk, input.count - offset)
            guard EVP_CipherUpdate(ctx.pointer, u8m(output)! + offset, &outLength, u8(input)! + offset, Int32(n)) == 1, outLength == Int32(n) else {
                throw CryptoError.drain(encrypt ? "AES-256-GCM seal" : "AES-256-GCM open")
            }
            offset += n
        }
    }

    func sealFinal(tag: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard tag.count == AES256GCM.tagSize else { throw CryptoError(operation: "AES-256-GCM: bad tag size", openSSLErrors: []) }
        var scratch = [UInt8](repeating: 0, count: 16)
        var outLength: Int32 = 0
        guard EVP_CipherFinal_ex(ctx.pointer, &scratch, &outLength) == 1 else { throw CryptoError.drain("AES-256-GCM seal final") }
        guard EVP_CIPHER_CTX_ctrl(ctx.pointer, EVP_CTRL_AEAD_GET_TAG, Int32(AES256GCM.tagSize), tag.baseAddress) == 1 else {
            throw CryptoError.drain("AES-256-GCM get tag")
        }
    }

    /// Whether the data fed so far authenticates under `tag`.
    func openFinal(tag: UnsafeRawBufferPointer) throws(CryptoError) -> Bool {
        guard tag.count == AES256GCM.tagSize else { throw CryptoError(operation: "AES-256-GCM: bad tag size", openSSLErrors: []) }
        guard EVP_CIPHER_CTX_ctrl(ctx.pointer, EVP_CTRL_AEAD_SET_TAG, Int32(AES256GCM.tagSize), UnsafeMutableRawPointer(mutating: tag.baseAddress)) == 1 else {
            throw CryptoError.drain("AES-256-GCM set tag")
        }
        var scratch = [UInt8](repeating: 0, count: 16)
        var outLength: Int32 = 0
        let ok = EVP_CipherFinal_ex(ctx.pointer, &scratch, &outLength)
        // A failed tag check is the expected outcome for tampered input, not an OpenSSL failure; drop anything queued.
        if ok != 1 { ERR_clear_error() }
        return ok == 1
    }
}

/// HKDF (RFC 5869) with SHA-256, computed with OpenSSL's HMAC.
public enum HKDF {
    /// `length` bytes (at most 8160) of output key material. An empty salt means the RFC's default (32 zero bytes).
    static func sha256(key: UnsafeRawBufferPointer, salt: [UInt8], info: [UInt8], length: Int) throws(CryptoError) -> SecretBytes {
        guard length > 0, length <= 255 * 32 else { throw CryptoError(operation: "HKDF-SHA256: length \(length) out of range", openSSLErrors: []) }
        // Extract: PRK = HMAC(salt, IKM).
        var prk = [UInt8](repeating: 0, count: 32)
        defer { Cleanse.wipe(&prk) }
        let effectiveSalt = salt.isEmpty ? [UInt8](repeating: 0, count: 32) : salt
        try withBytes(effectiveSalt) { (s) throws(CryptoError) in
            try withMutableBytes(&prk) { (out) throws(CryptoError) in try HMACSHA256.mac(key: s, parts: [key], into: out) }
        }
        // Expand: T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i).
        return try SecretBytes(count: length) { (okm) throws(CryptoError) in
            var previous = [UInt8]()
            defer { Cleanse.wipe(&previous) }
            var block = [UInt8](repeating: 0, count: 32)
            defer { Cleanse.wipe(&block) }
            var produced = 0
            var counter: UInt8 = 1
            while produced < length {
                var message = previous + info + [counter]
                defer { Cleanse.wipe(&message) }
                try withBytes(prk) { (k) throws(CryptoError) in
                    try withBytes(message) { (m) throws(CryptoError) in
                        try withMutableBytes(&block) { (out) throws(CryptoError) in try HMACSHA256.mac(key: k, parts: [m], into: out) }
                    }
                }
                let n = min(32, length - produced)
                block.withUnsafeBytes { okm.baseAddress!.advanced(by: produced).copyMemory(from: $0.baseAddress!, byteCount: n) }
                produced += n
                previous = block
                counter &+= 1
            }
        }
    }

    public static func sha256(key: SecretBytes, salt: [UInt8], info: [UInt8], length: Int = 32) throws(CryptoError) -> SecretBytes {
        try key.withUnsafeBytes { (k) throws(CryptoError) in try sha256(key: k, salt: salt, info: info, length: length) }
    }
}

/// HMAC (RFC 2104) with SHA-256 through OpenSSL's EVP_MAC.
public enum HMACSHA256 {
    /// The MAC of the concatenation of `parts`, written to `out` (32 bytes).
    static func mac(key: UnsafeRawBufferPointer, parts: [UnsafeRawBufferPointer], into out: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard out.count == 32 else { throw CryptoError(operation: "HMAC-SHA256: output must be 32 bytes", openSSLErrors: []) }
        let context = try MACContext(copying: try Algorithms.shared().hmacTemplate)
        let ctx = context.pointer
        // An empty key still needs a non-null pointer.
        let initialized = key.count > 0
            ? EVP_MAC_init(ctx, u8(key), key.count, nil)
            : [UInt8(0)].withUnsafeBufferPointer { EVP_MAC_init(ctx, $0.baseAddress, 0, nil) }
        guard initialized == 1 else { throw CryptoError.drain("HMAC-SHA256 init") }
        for part in parts where part.count > 0 {
            guard EVP_MAC_update(ctx, u8(part), part.count) == 1 else { throw CryptoError.drain("HMAC-SHA256") }
        }
        var n = 0
        guard EVP_MAC_final(ctx, u8m(out), &n, 32) == 1, n == 32 else { throw CryptoError.drain("HMAC-SHA256 final") }
    }

    static func mac(key: SecretBytes, message: UnsafeRawBufferPointer) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        try key.withUnsafeBytes { (k) throws(CryptoError) in
            try withMutableBytes(&out) { (o) throws(CryptoError) in try mac(key: k, parts: [message], into: o) }
        }
        return out
    }

    public static func mac(key: SecretBytes, message: [UInt8]) throws(CryptoError) -> [UInt8] {
        try withBytes(message) { (m) throws(CryptoError) in try mac(key: key, message: m) }
    }
}

/// scrypt (RFC 7914) with an explicit memory limit.
public enum Scrypt {
    /// The most memory `derive` ever lets scrypt use: 1.1 GiB (logN 20 with r = 8 needs 1 GiB and a little more).
    public static let memoryCeiling: UInt64 = 1_181_116_006

    /// The memory scrypt needs for these parameters, 128·r·N·p bytes plus the block buffer and 4 KiB of slack;
    /// nil when that does not fit in 64 bits (or the parameters are not positive).
    public static func memoryNeeded(logN: Int, r: Int, p: Int) -> UInt64? {
        guard (0..<64).contains(logN), r > 0, p > 0 else { return nil }
        let (rp, o1) = UInt64(r).multipliedReportingOverflow(by: UInt64(p))
        let (blocks, o2) = rp.multipliedReportingOverflow(by: 128)
        let (v, o3) = blocks.multipliedReportingOverflow(by: UInt64(1) << UInt64(logN))
        let (total, o4) = v.addingReportingOverflow(blocks)
        let (withSlack, o5) = total.addingReportingOverflow(4096)
        return o1 || o2 || o3 || o4 || o5 ? nil : withSlack
    }

    /// A 32-byte (or `length`-byte) key from `password`. Parameters whose need exceeds `memoryCeiling` are refused
    /// before anything is allocated; the memory limit given to OpenSSL is twice that need, but never more than
    /// `memoryCeiling` (OpenSSL's own default cap of 32 MiB would reject the recommended costs).
    public static func derive(password: [UInt8], salt: [UInt8], logN: Int, r: Int, p: Int, length: Int = 32) throws(CryptoError) -> SecretBytes {
        guard (1...30).contains(logN), r > 0, p > 0, let needed = memoryNeeded(logN: logN, r: r, p: p), needed <= memoryCeiling else {
            throw CryptoError(operation: "scrypt: invalid parameters logN=\(logN) r=\(r) p=\(p) (at most \(memoryCeiling) bytes of memory)", openSSLErrors: [])
        }
        let maxmem = min(needed * 2, memoryCeiling)
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
