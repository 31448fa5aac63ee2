/// Where a record is expected to belong; nil fields are not checked.
public struct ExpectedContext: Sendable, Equatable {
    public var storeID: String?
    public var namespace: String?
    public var name: String?
    public var uid: String?
    public var generation: UInt64?

    public init(storeID: String? = nil, namespace: String? = nil, name: String? = nil, uid: String? = nil, generation: UInt64? = nil) {
        self.storeID = storeID
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.generation = generation
    }

    /// Every field of `context`.
    public init(exactly context: RecordContext) {
        self.init(storeID: context.storeID, namespace: context.namespace, name: context.name, uid: context.uid, generation: context.generation)
    }

    /// Compares each given field with `c`: strings as UTF-8 bytes (not by Unicode canonical equivalence, so NFC and
    /// NFD spellings differ, as they do in the path and for the Python reader).
    func check(_ c: RecordContext) throws(RecordError) {
        func mismatch(_ field: String, _ got: String, _ want: String) -> RecordError {
            RecordError(.contextMismatch, "the record is bound to \(field) \"\(RecordError.display(got))\", expected \"\(RecordError.display(want))\" (moved or swapped record)")
        }
        func differ(_ a: String, _ b: String) -> Bool { !a.utf8.elementsEqual(b.utf8) }
        if let storeID, differ(storeID, c.storeID) { throw mismatch("store", c.storeID, storeID) }
        if let namespace, differ(namespace, c.namespace) { throw mismatch("namespace", c.namespace, namespace) }
        if let name, differ(name, c.name) { throw mismatch("name", c.name, name) }
        if let uid, differ(uid, c.uid) { throw mismatch("uid", c.uid, uid) }
        if let generation, generation != c.generation { throw mismatch("generation", String(c.generation), String(generation)) }
    }
}

/// The keys that can open a record: a keyring, a passphrase, or both.
public struct RecordKeys: Sendable {
    public var keyring: Keyring?
    /// UTF-8 passphrase bytes (NFC-normalized by the caller when it comes from a terminal).
    public var passphrase: [UInt8]?

    public init(keyring: Keyring? = nil, passphrase: [UInt8]? = nil) {
        self.keyring = keyring
        self.passphrase = passphrase
    }
}

/// A slot to write: a keyring key or a passphrase.
enum SlotKey {
    case kek(KeyID, SecretBytes)
    case passphrase([UInt8], logN: Int)
}

/// Randomness used to seal; tests inject fixed bytes to produce known-answer vectors.
protocol RecordRandomness {
    /// A fresh 32-byte data key.
    func dataKey() throws(CryptoError) -> SecretBytes
    /// Nonce and salt bytes.
    func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError)
}

struct SystemRandomness: RecordRandomness {
    func dataKey() throws(CryptoError) -> SecretBytes { try SecretBytes.random(count: 32) }
    func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) { try SecureRandom.fill(buffer) }
}

/// Sealing, opening and rewrapping KSR1 records (format: docs/at-rest-format.md).
public enum AtRestRecord {
    /// Seals `payload` for `context` under the keyring's primary key, plus a passphrase slot when `passphrase` is given.
    public static func seal(_ payload: RecordPayload, context: RecordContext, keyring: Keyring, passphrase: [UInt8]? = nil,
                            scryptLogN: Int = KSR1.defaultScryptLogN, created: UInt64) throws(RecordError) -> [UInt8] {
        guard let primary = keyring.primary, let material = primary.material else {
            throw RecordError(.noUsableSlot, "the keyring has no primary key")
        }
        var slots: [SlotKey] = [.kek(primary.id, material)]
        if let passphrase {
            guard scryptLogN >= KSR1.minScryptLogN, scryptLogN <= KSR1.maxScryptLogN else {
                throw RecordError(.scryptCost, "scrypt logN must be \(KSR1.minScryptLogN)...\(KSR1.maxScryptLogN)")
            }
            slots.append(.passphrase(passphrase, logN: scryptLogN))
        }
        return try seal(payload, context: context, created: created, slots: slots, random: SystemRandomness())
    }

    /// Seals `payload` under a single key given by id and bytes (bundles use this with their bundle key).
    static func seal(_ payload: RecordPayload, context: RecordContext, created: UInt64, slots slotKeys: [SlotKey],
                     random: some RecordRandomness) throws(RecordError) -> [UInt8] {
        guard (1...KSR1.maxSlots).contains(slotKeys.count) else { throw RecordError(.malformed, "a record needs 1...8 slots") }
        var passphraseSlots = 0
        for case .passphrase(_, let logN) in slotKeys {
            passphraseSlots += 1
            guard (KSR1.minScryptLogN...KSR1.maxScryptLogN).contains(logN) else {
                throw RecordError(.scryptCost, "scrypt logN must be \(KSR1.minScryptLogN)...\(KSR1.maxScryptLogN)")
            }
        }
        guard passphraseSlots <= 1 else { throw RecordError(.malformed, "a record has at most one passphrase slot") }
        do {
            let dek = try random.dataKey()
            var header = ByteWriter()
            header.raw(KSR1.magic)
            header.u8(KSR1.version)
            header.u8(KSR1.suite)
            for field in [context.storeID, context.namespace, context.name, context.uid] {
                guard field.utf8.count <= 0xFFFF else { throw RecordError(.malformed, "a context field is longer than 65535 bytes") }
                header.lp16(field)
            }
            header.u64(context.generation)
            header.u64(created)
            var nonce = [UInt8](repeating: 0, count: AES256GCM.nonceSize)
            try withMutableBytes(&nonce) { (b) throws(CryptoError) in try random.fill(b) }
            header.raw(nonce)
            let contextBytes = header.bytes
            var slots: [Slot] = []
            for key in slotKeys {
                slots.append(try wrap(dek, context: contextBytes, key: key, random: random))
            }
            return try finish(contextBytes: contextBytes, payloadNonce: nonce, slots: slots, dek: dek, payload: payload)
        } catch let error as RecordError {
            throw error
        } catch let error as CryptoError {
            throw RecordError.crypto(error)
        } catch {
            throw RecordError(.crypto, "\(error)")
        }
    }

    /// Header after CTX (slots and MAC), then the sealed payload.
    private static func finish(contextBytes: [UInt8], payloadNonce: [UInt8], slots: [Slot], dek: SecretBytes,
                               payload: RecordPayload) throws(RecordError) -> [UInt8] {
        let header = try headerWithMAC(contextBytes: contextBytes, slots: slots, dek: dek)
        let plainSize = PayloadCoding.encodedSize(payload)
        guard plainSize + AES256GCM.tagSize <= Int(UInt32.max) else { throw RecordError(.malformed, "the Secret is too large for a record") }
        let kPayload: SecretBytes
        do { kPayload = try HKDF.sha256(key: dek, salt: [], info: KSR1.infoPayload) } catch { throw .crypto(error) }
        let total = header.count + 4 + plainSize + AES256GCM.tagSize
        var failure: RecordError?
        let out = [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            var w = ByteWriter()
            w.raw(header)
            w.u32(UInt32(plainSize + AES256GCM.tagSize))
            w.bytes.withUnsafeBytes { raw.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            let start = w.bytes.count
            let body = UnsafeMutableRawBufferPointer(rebasing: raw[start..<start + plainSize])
            let tag = UnsafeMutableRawBufferPointer(rebasing: raw[(start + plainSize)...])
            do {
                let stream = try withBytes(kPayload) { (k) throws(CryptoError) in
                    try withBytes(contextBytes) { (aad) throws(CryptoError) in
                        try withBytes(payloadNonce) { (n) throws(CryptoError) in try GCMStream(encrypt: true, key: k, nonce: n, aad: aad) }
                    }
                }
                try PayloadCoding.seal(payload, with: stream, into: body)
                try stream.sealFinal(tag: tag)
                initialized = total
            } catch let e as RecordError {
                failure = e
            } catch let e as CryptoError {
                failure = .crypto(e)
            } catch {
                failure = RecordError(.crypto, "\(error)")
            }
            if failure != nil {
                raw.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: total)
                initialized = 0
            }
        }
        if let failure { throw failure }
        return out
    }

    private static func headerWithMAC(contextBytes: [UInt8], slots: [Slot], dek: SecretBytes) throws(RecordError) -> [UInt8] {
        var w = ByteWriter()
        w.raw(contextBytes)
        w.u8(UInt8(slots.count))
        for s in slots { s.encode(into: &w) }
        do {
            let kMAC = try HKDF.sha256(key: dek, salt: [], info: KSR1.infoHeaderMAC)
            w.raw(try HMACSHA256.mac(key: kMAC, message: w.bytes))
        } catch {
            throw .crypto(error)
        }
        return w.bytes
    }

    private static func wrap(_ dek: SecretBytes, context: [UInt8], key: SlotKey, random: some RecordRandomness) throws(RecordError) -> Slot {
        var slot = Slot(type: 0, kid: [], params: [], salt: [UInt8](repeating: 0, count: KSR1.saltSize),
                        nonce: [UInt8](repeating: 0, count: AES256GCM.nonceSize), wrapped: [])
        do {
            try withMutableBytes(&slot.salt) { (b) throws(CryptoError) in try random.fill(b) }
            try withMutableBytes(&slot.nonce) { (b) throws(CryptoError) in try random.fill(b) }
        } catch {
            throw .crypto(error)
        }
        switch key {
        case .kek(let id, _):
            slot.type = KSR1.slotKEK
            slot.kid = id.bytes
        case .passphrase(_, let logN):
            slot.type = KSR1.slotPassphrase
            slot.params = Slot.scryptParams(logN: logN)
        }
        let wk = try wrappingKey(slot: slot, key: key)
        // The DEK is copied only into the output buffer and encrypted there in place: no plaintext copy is left behind.
        var wrapped = [UInt8](repeating: 0, count: KSR1.wrappedSize)
        let aad = context + slot.prefix
        do {
            try withBytes(wk) { (k) throws(CryptoError) in
                try withBytes(slot.nonce) { (iv) throws(CryptoError) in
                    try withBytes(aad) { (a) throws(CryptoError) in
                        try withMutableBytes(&wrapped) { (o) throws(CryptoError) in
                            let body = UnsafeMutableRawBufferPointer(rebasing: o[0..<dek.count])
                            dek.withUnsafeBytes { body.copyMemory(from: $0) }
                            try AES256GCM.seal(key: k, nonce: iv, aad: a, inPlace: body,
                                               tag: UnsafeMutableRawBufferPointer(rebasing: o[dek.count...]))
                        }
                    }
                }
            }
        } catch {
            Cleanse.wipe(&wrapped)
            throw .crypto(error)
        }
        slot.wrapped = wrapped
        return slot
    }

    /// The slot's wrapping key: HKDF of the KEK with the slot salt, or scrypt of the passphrase.
    private static func wrappingKey(slot: Slot, key: SlotKey) throws(RecordError) -> SecretBytes {
        do {
            switch key {
            case .kek(_, let kek):
                return try HKDF.sha256(key: kek, salt: slot.salt, info: KSR1.infoKEKWrap)
            case .passphrase(let pw, _):
                let (logN, r, p) = try scryptParams(slot.params)
                return try Scrypt.derive(password: pw, salt: KSR1.scryptSaltPrefix + slot.salt, logN: logN, r: r, p: p)
            }
        } catch let e as RecordError {
            throw e
        } catch let e as CryptoError {
            throw .crypto(e)
        } catch {
            throw RecordError(.crypto, "\(error)")
        }
    }

    private static func scryptParams(_ params: [UInt8]) throws(RecordError) -> (Int, Int, Int) {
        var r = ByteReader(params)
        let logN = Int(try r.u8("scrypt logN"))
        let rr = Int(try r.u32("scrypt r"))
        let p = Int(try r.u32("scrypt p"))
        guard logN >= KSR1.minScryptLogN, logN <= KSR1.maxScryptLogN, rr == 8, p == 1 else {
            throw RecordError(.scryptCost, "the passphrase slot asks for scrypt logN=\(logN) r=\(rr) p=\(p); readers accept logN \(KSR1.minScryptLogN)...\(KSR1.maxScryptLogN), r = 8, p = 1")
        }
        return (logN, rr, p)
    }

    /// The data key of `record`, from the first slot the keys open, after checking the header MAC.
    static func unwrap(_ record: ParsedRecord, keys: RecordKeys) throws(RecordError) -> SecretBytes {
        let context = Array(record.contextBytes)
        var lastFailure: RecordError?
        for slot in record.slots {
            let key: SlotKey
            if slot.type == KSR1.slotKEK, let kek = keys.keyring?.decryptionKey(KeyID(bytes: slot.kid)) {
                key = .kek(KeyID(bytes: slot.kid), kek)
            } else if slot.type == KSR1.slotPassphrase, let pw = keys.passphrase {
                key = .passphrase(pw, logN: 0)
            } else {
                continue
            }
            let wk: SecretBytes
            do {
                wk = try wrappingKey(slot: slot, key: key)
            } catch {
                lastFailure = error
                continue
            }
            var opened: [UInt8]?
            do {
                opened = try AES256GCM.open(key: wk, nonce: slot.nonce, aad: context + slot.prefix, sealed: slot.wrapped)
            } catch {
                throw .crypto(error)
            }
            // Move the bytes out of the optional so the one buffer that holds them is the one wiped.
            var raw = opened.take() ?? []
            let slotFailure = RecordError(.unwrapFailed, slot.type == KSR1.slotPassphrase
                ? "the passphrase slot did not open: wrong passphrase, or the header was changed"
                : "the slot for key \(KeyID(bytes: slot.kid)) did not open: wrong key bytes, or the header was changed")
            guard raw.count == 32 else {
                Cleanse.wipe(&raw)
                lastFailure = slotFailure
                continue
            }
            let dek = SecretBytes(consuming: &raw)
            if slot.type == KSR1.slotPassphrase {
                // A passphrase slot reports a wrong MAC exactly as a wrong passphrase: one error, no oracle.
                do { try checkMAC(record, dek: dek) } catch {
                    if error.code != .headerMAC { throw error }
                    lastFailure = slotFailure
                    continue
                }
            } else {
                try checkMAC(record, dek: dek)
            }
            return dek
        }
        if let lastFailure { throw lastFailure }
        let ids = record.keyIDs.map(\.description).joined(separator: ", ")
        let want = record.hasPassphraseSlot ? (ids.isEmpty ? "the passphrase" : "a key among \(ids) or the passphrase") : "a key among \(ids)"
        throw RecordError(.noUsableSlot, "no slot opens with the keys given: the record needs \(want) (retired keys are kept out)")
    }

    private static func checkMAC(_ record: ParsedRecord, dek: SecretBytes) throws(RecordError) {
        let ok: Bool
        do {
            let kMAC = try HKDF.sha256(key: dek, salt: [], info: KSR1.infoHeaderMAC)
            ok = try withBytes(record.bytes) { (all) throws(CryptoError) in
                let mac = try HMACSHA256.mac(key: kMAC, message: UnsafeRawBufferPointer(rebasing: all[0..<record.macOffset]))
                return mac.withUnsafeBytes { ConstantTime.equal($0, UnsafeRawBufferPointer(rebasing: all[record.macOffset..<record.macOffset + 32])) }
            }
        } catch {
            throw .crypto(error)
        }
        guard ok else { throw RecordError(.headerMAC, "the header MAC does not match: the header was changed (swapped or edited slots)") }
    }

    /// Decrypts and decodes the payload with the data key.
    static func openPayload(_ record: ParsedRecord, dek: SecretBytes) throws(RecordError) -> RecordPayload {
        let kPayload: SecretBytes
        do { kPayload = try HKDF.sha256(key: dek, salt: [], info: KSR1.infoPayload) } catch { throw .crypto(error) }
        let n = record.bytes.count - record.ciphertextOffset - AES256GCM.tagSize
        let stream: GCMStream
        do {
            stream = try withBytes(record.bytes) { (all) throws(CryptoError) in
                try withBytes(kPayload) { (k) throws(CryptoError) in
                    try withBytes(record.payloadNonce) { (nonce) throws(CryptoError) in
                        try GCMStream(encrypt: false, key: k, nonce: nonce, aad: UnsafeRawBufferPointer(rebasing: all[0..<record.contextEnd]))
                    }
                }
            }
        } catch {
            throw .crypto(error)
        }
        return try withBytes(record.bytes) { (all) throws(RecordError) in
            try PayloadCoding.open(UnsafeRawBufferPointer(rebasing: all[record.ciphertextOffset..<record.ciphertextOffset + n]),
                                   tag: UnsafeRawBufferPointer(rebasing: all[(record.ciphertextOffset + n)...]), with: stream)
        }
    }

    /// Parses, checks the context, unwraps and decrypts `bytes`.
    public static func open(_ bytes: [UInt8], keys: RecordKeys, expecting: ExpectedContext = ExpectedContext()) throws(RecordError) -> (record: ParsedRecord, payload: RecordPayload) {
        let record = try ParsedRecord(bytes)
        try expecting.check(record.context)
        let dek = try unwrap(record, keys: keys)
        return (record, try openPayload(record, dek: dek))
    }

    /// The record with its keyring slots replaced by one slot for the keyring's primary key and a new header MAC.
    ///
    /// The context and the payload ciphertext are kept byte for byte; the payload is authenticated first so a
    /// tampered record is never re-blessed. Slots for keys the keyring does not know (recovery keys, passphrases) are
    /// kept as they are. Returns nil when the record already has exactly that primary slot and no other keyring slot.
    public static func rewrap(_ bytes: [UInt8], keyring: Keyring, expecting: ExpectedContext = ExpectedContext()) throws(RecordError) -> [UInt8]? {
        try rewrap(bytes, keyring: keyring, expecting: expecting, random: SystemRandomness())
    }

    static func rewrap(_ bytes: [UInt8], keyring: Keyring, expecting: ExpectedContext, random: some RecordRandomness) throws(RecordError) -> [UInt8]? {
        guard let primary = keyring.primary, let material = primary.material else {
            throw RecordError(.noUsableSlot, "the keyring has no primary key")
        }
        let record = try ParsedRecord(bytes)
        try expecting.check(record.context)
        let known = Set(keyring.keys.map(\.id))
        let ringSlots = record.slots.filter { $0.type == KSR1.slotKEK && known.contains(KeyID(bytes: $0.kid)) }
        if ringSlots.count == 1, ringSlots[0].kid == primary.id.bytes { return nil }
        let dek = try unwrap(record, keys: RecordKeys(keyring: keyring))
        _ = try openPayload(record, dek: dek)
        let context = Array(record.contextBytes)
        var slots = [try wrap(dek, context: context, key: .kek(primary.id, material), random: random)]
        slots += record.slots.filter { !($0.type == KSR1.slotKEK && known.contains(KeyID(bytes: $0.kid))) }
        guard slots.count <= KSR1.maxSlots else { throw RecordError(.malformed, "rewrapping would exceed 8 slots") }
        let header = try headerWithMAC(contextBytes: context, slots: slots, dek: dek)
        var w = ByteWriter()
        w.raw(header)
        w.u32(UInt32(record.bytes.count - record.ciphertextOffset))
        w.raw(record.ciphertext)
        return w.bytes
    }

    /// The record with all its slots replaced by `slots` (opened with `keys` first); context and payload ciphertext kept.
    static func reseal(_ bytes: [UInt8], keys: RecordKeys, expecting: ExpectedContext, slots slotKeys: [SlotKey],
                       random: some RecordRandomness) throws(RecordError) -> [UInt8] {
        let record = try ParsedRecord(bytes)
        try expecting.check(record.context)
        let dek = try unwrap(record, keys: keys)
        _ = try openPayload(record, dek: dek)
        let context = Array(record.contextBytes)
        var slots: [Slot] = []
        for key in slotKeys { slots.append(try wrap(dek, context: context, key: key, random: random)) }
        let header = try headerWithMAC(contextBytes: context, slots: slots, dek: dek)
        var w = ByteWriter()
        w.raw(header)
        w.u32(UInt32(record.bytes.count - record.ciphertextOffset))
        w.raw(record.ciphertext)
        return w.bytes
    }
}
