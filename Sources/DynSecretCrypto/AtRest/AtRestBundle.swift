/// Backup bundles: every record of a store, rewrapped under one bundle key, plus an authenticated manifest.
///
/// Layout (see docs/at-rest-format.md): `"KSB1" ‖ 0x01 ‖ bundle_id[16] ‖ u32 n ‖ lp32(key record) ‖ n × lp32(record) ‖
/// lp32(manifest record)`. The key record holds the bundle key under a passphrase and/or recovery-key slot; records and
/// manifest are KSR1 records with one keyring slot whose kid is the bundle id.
public enum AtRestBundle {
    static let magic: [UInt8] = Array("KSB1".utf8)
    static let keyType = "dynsecret.io/bundle-key"
    static let manifestType = "dynsecret.io/bundle-manifest"

    /// A bundle of every record in `store`, protected by `passphrase` and/or `recovery`'s primary key.
    public static func export(store: AtRestStore, keyring: Keyring, passphrase: [UInt8]?, recovery: Keyring?,
                              scryptLogN: Int = KSR1.defaultScryptLogN, created: UInt64) throws(StoreError) -> [UInt8] {
        guard (KSR1.minScryptLogN...KSR1.maxScryptLogN).contains(scryptLogN) else {
            throw StoreError("scrypt logN must be \(KSR1.minScryptLogN)...\(KSR1.maxScryptLogN), not \(scryptLogN)")
        }
        var records: [(RecordLocation, [UInt8], ExpectedContext)] = []
        for loc in try store.records() { records.append((loc, try store.readBytes(loc), store.expectation(loc))) }
        return try export(records: records, keyring: keyring, passphrase: passphrase, recovery: recovery, scryptLogN: scryptLogN,
                          created: created, random: SystemRandomness())
    }

    static func export(records: [(RecordLocation, [UInt8], ExpectedContext)], keyring: Keyring, passphrase: [UInt8]?, recovery: Keyring?,
                       scryptLogN: Int, created: UInt64, random: some RecordRandomness) throws(StoreError) -> [UInt8] {
        do {
            let bundleID = KeyID(bytes: try SecureRandom.bytes(KSR1.kidSize))
            let bundleKey = try SecretBytes.random(count: 32)
            let storeID = "bundle:\(bundleID)"
            var keySlots: [SlotKey] = []
            if let passphrase { keySlots.append(.passphrase(passphrase, logN: scryptLogN)) }
            if let recovery, let p = recovery.primary, let m = p.material { keySlots.append(.kek(p.id, m)) }
            guard !keySlots.isEmpty else { throw StoreError("a bundle needs a passphrase or a recovery keyring") }
            var keyBytes = bundleKey.copyBytes()
            defer { Cleanse.wipe(&keyBytes) }
            let keyRecord = try AtRestRecord.seal(RecordPayload(type: keyType, data: ["key": keyBytes]),
                                                  context: RecordContext(storeID: storeID, namespace: "", name: "bundle-key"),
                                                  created: created, slots: keySlots, random: random)
            var w = ByteWriter()
            w.raw(magic)
            w.u8(1)
            w.raw(bundleID.bytes)
            w.u32(UInt32(records.count))
            w.u32(UInt32(keyRecord.count))
            w.raw(keyRecord)
            var manifest = ""
            for (loc, bytes, expect) in records {
                let rewrapped: [UInt8]
                do {
                    rewrapped = try AtRestRecord.reseal(bytes, keys: RecordKeys(keyring: keyring), expecting: expect,
                                                        slots: [.kek(bundleID, bundleKey)], random: random)
                } catch {
                    throw StoreError(error.located(loc.path).description, record: error)
                }
                let c = try ParsedRecord(rewrapped).context
                // The manifest is tab-separated lines: a field holding a tab or a line break would corrupt it.
                guard [c.storeID, c.namespace, c.name, c.uid].allSatisfy({ !$0.contains(where: { $0 == "\t" || $0.isNewline }) }) else {
                    throw StoreError("record \(RecordError.display(loc.path, limit: 4096)): a context field holds a tab or line break; it cannot be exported")
                }
                manifest += [c.storeID, c.namespace, c.name, c.uid, String(c.generation), try SHA256.hex(rewrapped)].joined(separator: "\t") + "\n"
                w.u32(UInt32(rewrapped.count))
                w.raw(rewrapped)
            }
            let manifestRecord = try AtRestRecord.seal(RecordPayload(type: manifestType, data: ["records": Array(manifest.utf8)]),
                                                       context: RecordContext(storeID: storeID, namespace: "", name: "manifest", generation: UInt64(records.count)),
                                                       created: created, slots: [.kek(bundleID, bundleKey)], random: random)
            w.u32(UInt32(manifestRecord.count))
            w.raw(manifestRecord)
            return w.bytes
        } catch let e as StoreError {
            throw e
        } catch let e as RecordError {
            throw StoreError(e.description, record: e)
        } catch {
            throw StoreError("\(error)")
        }
    }

    /// Every record of a bundle, decrypted, after checking the manifest: nothing dropped, duplicated, replaced or reordered.
    public static func open(_ bytes: [UInt8], keys: RecordKeys) throws(RecordError) -> [(RecordContext, RecordPayload)] {
        var r = ByteReader(bytes)
        guard bytes.count >= 4, Array(bytes[0..<4]) == magic else { throw RecordError(.notARecord, "not a KSB1 bundle (bad magic)") }
        r.offset = 4
        let version = try r.u8("bundle version")
        guard version == 1 else { throw RecordError(.unsupportedVersion, "unsupported bundle version \(version)") }
        let bundleID = KeyID(bytes: try r.take(KSR1.kidSize, "bundle id"))
        let storeID = "bundle:\(bundleID)"
        let count = Int(try r.u32("record count"))
        func next(_ what: String) throws(RecordError) -> [UInt8] { try r.take(Int(try r.u32(what + " length")), what) }
        let keyRecord = try next("bundle key record")
        var (_, keyPayload) = try AtRestRecord.open(keyRecord, keys: keys, expecting: ExpectedContext(storeID: storeID, namespace: "", name: "bundle-key"))
        // Move the key out of the payload so the buffer wiped is the only one that holds it; wipe anything else.
        var raw = keyPayload.data.removeValue(forKey: "key") ?? []
        for k in Array(keyPayload.data.keys) { Cleanse.wipe(&keyPayload.data[k]!) }
        guard keyPayload.type == keyType, keyPayload.data.isEmpty, raw.count == 32 else {
            Cleanse.wipe(&raw)
            throw RecordError(.payloadMalformed, "the bundle key record holds no 32-byte key")
        }
        var ring = Keyring(keys: [])
        ring.add(id: bundleID, material: SecretBytes(consuming: &raw), state: .primary)
        var records: [[UInt8]] = []
        for i in 0..<count { records.append(try next("record \(i + 1)")) }
        let manifestRecord = try next("manifest")
        guard r.offset == bytes.count else { throw RecordError(.malformed, "\(bytes.count - r.offset) unexpected bytes after the bundle manifest") }
        let (_, manifestPayload) = try AtRestRecord.open(manifestRecord, keys: RecordKeys(keyring: ring),
                                                         expecting: ExpectedContext(storeID: storeID, namespace: "", name: "manifest", generation: UInt64(count)))
        guard manifestPayload.type == manifestType, let text = manifestPayload.data["records"] else {
            throw RecordError(.payloadMalformed, "the bundle manifest is malformed")
        }
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        guard lines.count == count else {
            throw RecordError(.contextMismatch, "the bundle manifest lists \(lines.count) records but the bundle holds \(count) (dropped or added records)")
        }
        var seen = Set<String>()
        var out: [(RecordContext, RecordPayload)] = []
        for (i, line) in lines.enumerated() {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 6, let generation = UInt64(f[4]) else { throw RecordError(.payloadMalformed, "bundle manifest line \(i + 1) is malformed") }
            let shown = "\(RecordError.display(f[1]))/\(RecordError.display(f[2])) generation \(generation)"
            guard seen.insert(f[0..<5].joined(separator: "\t")).inserted else {
                throw RecordError(.contextMismatch, "the bundle manifest lists \(shown) twice (duplicated record)")
            }
            let hash: String
            do { hash = try SHA256.hex(records[i]) } catch { throw .crypto(error) }
            guard ConstantTime.equal(Array(hash.utf8), Array(f[5].utf8)) else {
                throw RecordError(.contextMismatch, "record \(i + 1) of the bundle is not the one its manifest lists for \(shown) (replaced, rolled back or reordered)")
            }
            let expected = RecordContext(storeID: f[0], namespace: f[1], name: f[2], uid: f[3], generation: generation)
            let (record, payload) = try AtRestRecord.open(records[i], keys: RecordKeys(keyring: ring), expecting: ExpectedContext(exactly: expected))
            out.append((record.context, payload))
        }
        return out
    }
}
