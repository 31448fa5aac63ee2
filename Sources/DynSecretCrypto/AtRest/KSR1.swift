/// What a record is bound to; all of it is authenticated (as AES-GCM associated data) with the payload.
public struct RecordContext: Sendable, Equatable, Hashable {
    /// The store (or bundle) the record belongs to; empty for standalone records.
    public var storeID: String
    public var namespace: String
    public var name: String
    /// The Secret's `metadata.uid`; empty when unknown.
    public var uid: String
    /// The version of the Secret this record holds (the controller's counter, or `metadata.resourceVersion`).
    public var generation: UInt64

    public init(storeID: String = "", namespace: String, name: String, uid: String = "", generation: UInt64 = 0) {
        self.storeID = storeID
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.generation = generation
    }
}

/// The encrypted content of a record: a Secret's type and data (key names included).
public struct RecordPayload: Sendable, Equatable {
    public var type: String
    public var data: [String: [UInt8]]

    public init(type: String, data: [String: [UInt8]]) {
        self.type = type
        self.data = data
    }
}

/// The KSR1 record format (see docs/at-rest-format.md): constants and the byte-level parser.
public enum KSR1 {
    static let magic: [UInt8] = Array("KSR1".utf8)
    static let version: UInt8 = 1
    static let suite: UInt8 = 1
    static let slotKEK: UInt8 = 1
    static let slotPassphrase: UInt8 = 2
    static let reservedSlotTypes: ClosedRange<UInt8> = 3...4
    static let maxSlots = 8
    static let saltSize = 32
    static let kidSize = 16
    static let wrappedSize = 32 + AES256GCM.tagSize
    static let padBlock = 256
    static let infoPayload = Array("ksr1 payload".utf8)
    static let infoHeaderMAC = Array("ksr1 header-mac".utf8)
    static let infoKEKWrap = Array("ksr1 kek-wrap".utf8)
    static let scryptSaltPrefix = Array("ksr1 scrypt".utf8)

    /// scrypt limits: writers use logN 18 by default, never below 17; readers refuse logN below 17 or above 20 (1 GiB),
    /// r ≠ 8 or p ≠ 1.
    public static let defaultScryptLogN = 18
    public static let minScryptLogN = 17
    public static let maxScryptLogN = 20
}

/// One key slot of a record header.
struct Slot: Equatable {
    var type: UInt8
    var kid: [UInt8]
    var params: [UInt8]
    var salt: [UInt8]
    var nonce: [UInt8]
    var wrapped: [UInt8]

    /// The slot's bytes that are bound into its wrapping: `type ‖ lp16(kid) ‖ lp16(params)`.
    var prefix: [UInt8] {
        var w = ByteWriter()
        w.u8(type)
        w.lp16(kid)
        w.lp16(params)
        return w.bytes
    }

    func encode(into w: inout ByteWriter) {
        w.u8(type)
        w.lp16(kid)
        w.lp16(params)
        w.raw(salt)
        w.raw(nonce)
        w.lp16(wrapped)
    }

    /// scrypt parameters of a passphrase slot: `logN u8 ‖ r u32 ‖ p u32`.
    static func scryptParams(logN: Int, r: Int = 8, p: Int = 1) -> [UInt8] {
        var w = ByteWriter()
        w.u8(UInt8(logN))
        w.u32(UInt32(r))
        w.u32(UInt32(p))
        return w.bytes
    }
}

/// A record parsed (not yet decrypted): header fields and byte ranges.
public struct ParsedRecord: Sendable {
    public let context: RecordContext
    /// Seconds since 1970 when the record was sealed.
    public let created: UInt64
    let bytes: [UInt8]
    let contextEnd: Int
    let payloadNonce: [UInt8]
    let slots: [Slot]
    let macOffset: Int
    let ciphertextOffset: Int

    /// The key ids of the record's keyring slots.
    public var keyIDs: [KeyID] { slots.filter { $0.type == KSR1.slotKEK }.map { KeyID(bytes: $0.kid) } }
    /// Whether the record has a passphrase slot.
    public var hasPassphraseSlot: Bool { slots.contains { $0.type == KSR1.slotPassphrase } }
    /// The payload ciphertext and tag, exactly as stored.
    public var ciphertext: ArraySlice<UInt8> { bytes[ciphertextOffset...] }

    var contextBytes: ArraySlice<UInt8> { bytes[0..<contextEnd] }

    /// Parses `bytes` strictly: every length checked, nothing after the ciphertext.
    public init(_ bytes: [UInt8]) throws(RecordError) {
        var r = ByteReader(bytes)
        guard bytes.count >= 4, Array(bytes[0..<4]) == KSR1.magic else {
            throw RecordError(.notARecord, "not a KSR1 record (bad magic)")
        }
        r.offset = 4
        let version = try r.u8("version")
        guard version == KSR1.version else { throw RecordError(.unsupportedVersion, "unsupported format version \(version) (this reader knows 1)") }
        let suite = try r.u8("suite")
        guard suite == KSR1.suite else { throw RecordError(.unsupportedSuite, "unsupported cipher suite \(suite) (this reader knows 1)") }
        let storeID = try r.string("store id")
        let namespace = try r.string("namespace")
        let name = try r.string("name")
        let uid = try r.string("uid")
        let generation = try r.u64("generation")
        created = try r.u64("created")
        payloadNonce = try r.take(AES256GCM.nonceSize, "payload nonce")
        contextEnd = r.offset
        context = RecordContext(storeID: storeID, namespace: namespace, name: name, uid: uid, generation: generation)

        let count = Int(try r.u8("slot count"))
        guard (1...KSR1.maxSlots).contains(count) else {
            throw RecordError(.malformed, "slot count \(count) is outside 1...\(KSR1.maxSlots)")
        }
        var slots: [Slot] = []
        for i in 1...count {
            let type = try r.u8("slot \(i) type")
            guard type == KSR1.slotKEK || type == KSR1.slotPassphrase || KSR1.reservedSlotTypes.contains(type) else {
                throw RecordError(.malformed, "slot \(i) has unknown type \(type)")
            }
            let kid = try r.lp16("slot \(i) key id")
            let params = try r.lp16("slot \(i) parameters")
            let salt = try r.take(KSR1.saltSize, "slot \(i) salt")
            let nonce = try r.take(AES256GCM.nonceSize, "slot \(i) nonce")
            let wrapped = try r.lp16("slot \(i) wrapped key")
            if type == KSR1.slotKEK {
                guard kid.count == KSR1.kidSize, params.isEmpty else {
                    throw RecordError(.malformed, "slot \(i): a keyring slot needs a 16-byte key id and no parameters")
                }
            } else if type == KSR1.slotPassphrase {
                guard kid.isEmpty, params.count == 9 else {
                    throw RecordError(.malformed, "slot \(i): a passphrase slot needs no key id and 9 bytes of scrypt parameters")
                }
            }
            guard wrapped.count == KSR1.wrappedSize else {
                throw RecordError(.malformed, "slot \(i): the wrapped key is \(wrapped.count) bytes, not \(KSR1.wrappedSize)")
            }
            slots.append(Slot(type: type, kid: kid, params: params, salt: salt, nonce: nonce, wrapped: wrapped))
        }
        guard slots.filter({ $0.type == KSR1.slotPassphrase }).count <= 1 else {
            throw RecordError(.malformed, "more than one passphrase slot (a record has at most one)")
        }
        self.slots = slots
        macOffset = r.offset
        _ = try r.take(32, "header MAC")
        let length = Int(try r.u32("payload length"))
        ciphertextOffset = r.offset
        let remaining = bytes.count - r.offset
        if length > remaining {
            throw RecordError(.truncated, "truncated: the payload needs \(length) bytes, \(remaining) remain")
        }
        if length < remaining {
            throw RecordError(.malformed, "\(remaining - length) unexpected bytes after the payload")
        }
        guard length >= KSR1.padBlock + AES256GCM.tagSize, (length - AES256GCM.tagSize) % KSR1.padBlock == 0 else {
            throw RecordError(.badPayloadLength, "the payload is \(length) bytes: not a multiple of \(KSR1.padBlock) plus a 16-byte tag (short tag or cut ciphertext)")
        }
        self.bytes = bytes
    }
}

/// Bytes written big-endian.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xFF)) }
    mutating func u32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8((v >> UInt32(s)) & 0xFF)) } }
    mutating func u64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((v >> UInt64(s)) & 0xFF)) } }
    mutating func raw<C: Collection>(_ b: C) where C.Element == UInt8 { bytes.append(contentsOf: b) }
    mutating func lp16<C: Collection>(_ b: C) where C.Element == UInt8 {
        precondition(b.count <= 0xFFFF, "field longer than 65535 bytes")
        u16(UInt16(b.count))
        raw(b)
    }
    mutating func lp16(_ s: String) { lp16(Array(s.utf8)) }
}

/// Bytes read big-endian with bounds checks that name the field.
struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func take(_ n: Int, _ field: String) throws(RecordError) -> [UInt8] {
        guard n >= 0, bytes.count - offset >= n else {
            throw RecordError(.truncated, "truncated in the \(field)")
        }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    mutating func u8(_ field: String) throws(RecordError) -> UInt8 { try take(1, field)[0] }
    mutating func u16(_ field: String) throws(RecordError) -> UInt16 {
        let b = try take(2, field)
        return UInt16(b[0]) << 8 | UInt16(b[1])
    }
    mutating func u32(_ field: String) throws(RecordError) -> UInt32 {
        try take(4, field).reduce(0) { $0 << 8 | UInt32($1) }
    }
    mutating func u64(_ field: String) throws(RecordError) -> UInt64 {
        try take(8, field).reduce(0) { $0 << 8 | UInt64($1) }
    }
    mutating func lp16(_ field: String) throws(RecordError) -> [UInt8] {
        try take(Int(try u16(field + " length")), field)
    }
    mutating func string(_ field: String) throws(RecordError) -> String {
        let b = try lp16(field)
        guard let s = String(validating: b, as: UTF8.self) else { throw RecordError(.malformed, "the \(field) is not UTF-8") }
        return s
    }
}

/// The plaintext encoding: `lp16(type) ‖ u32 n ‖ n × (lp16(key) ‖ u32 len ‖ value)`, keys sorted bytewise,
/// zero-padded to a multiple of 256 bytes.
enum PayloadCoding {
    static func encodedSize(_ p: RecordPayload) -> Int {
        let raw = 2 + p.type.utf8.count + 4 + p.data.reduce(0) { $0 + 2 + $1.key.utf8.count + 4 + $1.value.count }
        return (raw + KSR1.padBlock - 1) / KSR1.padBlock * KSR1.padBlock
    }

    static func sortedKeys(_ p: RecordPayload) -> [String] {
        p.data.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }
}

extension PayloadCoding {
    /// Encodes and encrypts `p` in one pass straight into `output` (exactly `encodedSize(p)` bytes): framing from a
    /// small buffer, each value from its own storage, then the zero padding.
    static func seal(_ p: RecordPayload, with stream: GCMStream, into output: UnsafeMutableRawBufferPointer) throws(RecordError) {
        var offset = 0
        func feed(_ bytes: UnsafeRawBufferPointer) throws(CryptoError) {
            guard bytes.count > 0 else { return }
            try stream.update(bytes, into: UnsafeMutableRawBufferPointer(rebasing: output[offset..<offset + bytes.count]))
            offset += bytes.count
        }
        do {
            var frame = ByteWriter()
            let type = Array(p.type.utf8)
            guard type.count <= 0xFFFF else { throw RecordError(.malformed, "the Secret type is longer than 65535 bytes") }
            frame.lp16(type)
            frame.u32(UInt32(p.data.count))
            for key in sortedKeys(p) {
                let k = Array(key.utf8)
                let v = p.data[key]!
                guard k.count <= 0xFFFF else { throw RecordError(.malformed, "a data key is longer than 65535 bytes") }
                guard v.count <= Int(UInt32.max) else { throw RecordError(.malformed, "a data value is larger than 4 GiB") }
                frame.lp16(k)
                frame.u32(UInt32(v.count))
                try withBytes(frame.bytes) { (b) throws(CryptoError) in try feed(b) }
                frame.bytes.removeAll(keepingCapacity: true)
                try withBytes(v) { (b) throws(CryptoError) in try feed(b) }
            }
            try withBytes(frame.bytes) { (b) throws(CryptoError) in try feed(b) }
            let padding = output.count - offset
            guard padding >= 0, padding < KSR1.padBlock else { throw RecordError(.malformed, "payload size mismatch") }
            try withBytes([UInt8](repeating: 0, count: padding)) { (b) throws(CryptoError) in try feed(b) }
        } catch let e as RecordError {
            throw e
        } catch let e as CryptoError {
            throw .crypto(e)
        } catch {
            throw RecordError(.crypto, "\(error)")
        }
    }

    /// Decrypts and decodes `ciphertext` in one pass, each value straight into its own array. The tag is checked before
    /// anything is returned; a framing error found on the way is reported only if the payload authenticates (otherwise
    /// the payload was tampered with and that is the error). Values are wiped on every failure.
    static func open(_ ciphertext: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer, with stream: GCMStream) throws(RecordError) -> RecordPayload {
        var offset = 0
        var data: [String: [UInt8]] = [:]
        var framingError: RecordError?
        var type = ""
        func take(_ n: Int, _ what: String) throws -> [UInt8] {
            guard n >= 0, ciphertext.count - offset >= n else { throw RecordError(.payloadMalformed, "the payload ends inside the \(what)") }
            let start = offset
            offset += n
            var out = [UInt8](unsafeUninitializedCapacity: n) { _, c in c = n }
            try withMutableBytes(&out) { (o) throws(CryptoError) in
                try stream.update(UnsafeRawBufferPointer(rebasing: ciphertext[start..<start + n]), into: o)
            }
            return out
        }
        func int(_ n: Int, _ what: String) throws -> Int { try take(n, what).reduce(0) { $0 << 8 | Int($1) } }
        do {
            let typeBytes = try take(try int(2, "type length"), "type")
            guard let t = String(validating: typeBytes, as: UTF8.self) else { throw RecordError(.payloadMalformed, "the Secret type is not UTF-8") }
            type = t
            let n = try int(4, "key count")
            var previous: [UInt8]?
            for _ in 0..<n {
                let key = try take(try int(2, "key length"), "key")
                if let previous, !previous.lexicographicallyPrecedes(key) {
                    throw RecordError(.payloadMalformed, "the payload's data keys are not sorted and unique")
                }
                guard let k = String(validating: key, as: UTF8.self) else { throw RecordError(.payloadMalformed, "a data key is not UTF-8") }
                // Distinct bytes can still be one Swift dictionary key (Unicode canonical equivalence, NFC vs NFD);
                // never let a later value silently replace an earlier one.
                guard data[k] == nil else {
                    throw RecordError(.payloadMalformed, "the payload has two data keys that are the same text in different Unicode forms")
                }
                data[k] = try take(try int(4, "value length"), "value")
                previous = key
            }
            let rest = ciphertext.count - offset
            guard ciphertext.count % KSR1.padBlock == 0, rest < KSR1.padBlock else {
                throw RecordError(.payloadMalformed, "the payload padding is \(rest) bytes; it must be under \(KSR1.padBlock)")
            }
            if try take(rest, "padding").contains(where: { $0 != 0 }) {
                throw RecordError(.padding, "the payload padding holds non-zero bytes")
            }
        } catch let e as RecordError {
            framingError = e
        } catch let e as CryptoError {
            throw .crypto(e)
        } catch {
            throw RecordError(.crypto, "\(error)")
        }
        func wipeAll() { for k in Array(data.keys) { Cleanse.wipe(&data[k]!) } }
        let authentic: Bool
        do {
            if offset < ciphertext.count {
                // Decrypt what framing did not consume, so the tag covers all of it.
                var scratch = [UInt8](repeating: 0, count: 1 << 16)
                while offset < ciphertext.count {
                    let n = min(scratch.count, ciphertext.count - offset)
                    let start = offset
                    try withMutableBytes(&scratch) { (s) throws(CryptoError) in
                        try stream.update(UnsafeRawBufferPointer(rebasing: ciphertext[start..<start + n]), into: UnsafeMutableRawBufferPointer(rebasing: s[0..<n]))
                    }
                    offset += n
                }
                Cleanse.wipe(&scratch)
            }
            authentic = try stream.openFinal(tag: tag)
        } catch {
            wipeAll()
            throw .crypto(error)
        }
        guard authentic else {
            wipeAll()
            throw RecordError(.payloadAuthentication, "the payload does not authenticate: the ciphertext or the record's context was changed")
        }
        if let framingError {
            wipeAll()
            throw framingError
        }
        return RecordPayload(type: type, data: data)
    }
}
