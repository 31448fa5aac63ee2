public import DynSecretCore

/// A store operation that failed; `record` carries the record-level cause when there is one.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var record: RecordError?

    public init(_ message: String, record: RecordError? = nil) {
        self.message = message
        self.record = record
    }

    public var description: String { message }
}

/// Where one record lives in a store, decoded from its path.
public struct RecordLocation: Sendable, Hashable, Comparable {
    public var namespace: String
    public var name: String
    public var uid: String
    public var generation: UInt64
    public var path: String

    public static func < (a: RecordLocation, b: RecordLocation) -> Bool {
        (a.namespace, a.name, a.generation, a.uid) < (b.namespace, b.name, b.generation, b.uid)
    }
}

/// A directory of KSR1 records, one per Secret version:
/// `DIR/store-id` and `DIR/records/NAMESPACE/NAME/GENERATION[-UID].ksr1` (generation as 20 decimal digits).
///
/// Every record is bound to the store id, namespace, name, uid and generation of its path; a record copied to another
/// path or store does not open. Files are 0600 and written atomically; directories are 0700.
public struct AtRestStore: Sendable {
    public let directory: String
    /// 32 hex digits chosen when the store was created.
    public let storeID: String
    /// Whether writes fsync the file and its directory (default true).
    public var durable: Bool

    static let suffix = ".ksr1"

    /// Opens the store at `directory`; with `create`, makes it (and its id) when missing.
    public static func open(_ directory: String, create: Bool, durable: Bool = true) throws(StoreError) -> AtRestStore {
        let idPath = "\(directory)/store-id"
        do {
            if try AtomicFile.permissions(idPath) == nil {
                guard create else { throw StoreError("store \(directory): not a store (no store-id file)") }
                try AtomicFile.makeDirectory(directory)
                let id = Hex.encode(try SecureRandom.bytes(16))
                try AtomicFile.write(Array((id + "\n").utf8), to: idPath, mode: 0o600)
            }
            let text = String(decoding: try AtomicFile.read(idPath), as: UTF8.self).trimmingSuffixNewlines()
            guard text.utf8.count == 32, text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                throw StoreError("store \(directory): store-id must hold 32 lowercase hex digits")
            }
            return AtRestStore(directory: directory, storeID: text, durable: durable)
        } catch let e as StoreError {
            throw e
        } catch let e as FileError {
            throw StoreError("store \(e.description)")
        } catch let e as CryptoError {
            throw StoreError("store \(directory): \(e.description)")
        } catch {
            throw StoreError("store \(directory): \(error)")
        }
    }

    /// The path of the record for a Secret version.
    public func path(namespace: String, name: String, uid: String, generation: UInt64) throws(StoreError) -> String {
        try Self.checkSegment(namespace, what: "namespace")
        try Self.checkSegment(name, what: "name")
        guard uid.utf8.allSatisfy({ Self.isAlnum($0) || $0 == UInt8(ascii: "-") }) else {
            throw StoreError("uid \"\(RecordError.display(uid))\" may hold only letters, digits and '-'")
        }
        let g = String(generation)
        let padded = String(repeating: "0", count: 20 - g.count) + g
        return "\(directory)/records/\(namespace)/\(name)/\(padded)\(uid.isEmpty ? "" : "-" + uid)\(Self.suffix)"
    }

    /// Seals `secret` (type and data, stringData merged) under the keyring's primary key and writes it atomically.
    ///
    /// `generation` is the version being kept; writing the same version again replaces the record.
    @discardableResult
    public func write(_ secret: Secret, generation: UInt64, keyring: Keyring, created: UInt64) throws(StoreError) -> RecordLocation {
        guard let namespace = secret.metadata.namespace, !namespace.isEmpty, let name = secret.metadata.name, !name.isEmpty else {
            throw StoreError("the Secret needs metadata.name and metadata.namespace to be stored")
        }
        let uid = secret.metadata.uid ?? ""
        let path = try path(namespace: namespace, name: name, uid: uid, generation: generation)
        let context = RecordContext(storeID: storeID, namespace: namespace, name: name, uid: uid, generation: generation)
        let bytes: [UInt8]
        do {
            bytes = try AtRestRecord.seal(Self.payload(of: secret), context: context, keyring: keyring, created: created)
        } catch {
            throw StoreError("\(namespace)/\(name): \(error.description)", record: error)
        }
        do {
            try AtomicFile.makeDirectory(AtomicFile.directory(of: path), durable: durable)
            try AtomicFile.write(bytes, to: path, durable: durable)
        } catch {
            throw StoreError("store \(RecordError.display(error.description, limit: 4096))")
        }
        return RecordLocation(namespace: namespace, name: name, uid: uid, generation: generation, path: path)
    }

    /// Records in the store, optionally for one namespace or one Secret, sorted by namespace, name and generation.
    /// A `namespace` or `name` that is not a valid path segment (such as `..`) is refused.
    public func records(namespace: String? = nil, name: String? = nil) throws(StoreError) -> [RecordLocation] {
        if let namespace { try Self.checkSegment(namespace, what: "namespace") }
        if let name { try Self.checkSegment(name, what: "name") }
        var out: [RecordLocation] = []
        do throws(FileError) {
            let root = "\(directory)/records"
            let namespaces = if let namespace { [namespace] } else { try AtomicFile.list(root) }
            for ns in namespaces where !ns.hasPrefix(".") {
                let names = if let name { [name] } else { try AtomicFile.list("\(root)/\(ns)") }
                for n in names where !n.hasPrefix(".") {
                    for file in try AtomicFile.list("\(root)/\(ns)/\(n)") where !file.hasPrefix(".") && file.hasSuffix(Self.suffix) {
                        let stem = file.dropLast(Self.suffix.count)
                        let digits = stem.prefix(20)
                        guard digits.count == 20, let generation = UInt64(digits) else { continue }
                        var uid = String(stem.dropFirst(20))
                        if uid.hasPrefix("-") { uid.removeFirst() } else if !uid.isEmpty { continue }
                        out.append(RecordLocation(namespace: ns, name: n, uid: uid, generation: generation, path: "\(root)/\(ns)/\(n)/\(file)"))
                    }
                }
            }
        } catch {
            throw StoreError("store \(RecordError.display(error.description, limit: 4096))")
        }
        return out.sorted()
    }

    /// Temporary files left by interrupted writes (never read as records; safe to delete).
    public func interruptedWrites() throws(StoreError) -> [String] {
        var out: [String] = []
        do throws(FileError) {
            let root = "\(directory)/records"
            for ns in try AtomicFile.list(root) where !ns.hasPrefix(".") {
                for n in try AtomicFile.list("\(root)/\(ns)") where !n.hasPrefix(".") {
                    for file in try AtomicFile.list("\(root)/\(ns)/\(n)") where file.hasPrefix(".") && file.contains(".tmp-") {
                        out.append("\(root)/\(ns)/\(n)/\(file)")
                    }
                }
            }
        } catch {
            throw StoreError("store \(RecordError.display(error.description, limit: 4096))")
        }
        return out
    }

    /// The bytes and header of the record at `location`, with its context checked against the path.
    public func parse(_ location: RecordLocation) throws(StoreError) -> ParsedRecord {
        let bytes = try readBytes(location)
        do {
            let record = try ParsedRecord(bytes)
            try expectation(location).check(record.context)
            return record
        } catch {
            throw StoreError(error.located(location.path).description, record: error.located(location.path))
        }
    }

    /// Decrypts the record at `location` into a Secret manifest (name, namespace, uid, type, data).
    public func read(_ location: RecordLocation, keys: RecordKeys) throws(StoreError) -> Secret {
        let bytes = try readBytes(location)
        do {
            let (record, payload) = try AtRestRecord.open(bytes, keys: keys, expecting: expectation(location))
            return Self.secret(payload, context: record.context)
        } catch {
            throw StoreError(error.located(location.path).description, record: error.located(location.path))
        }
    }

    /// Rewraps the record at `location` to the keyring's primary key; returns false when it already was.
    @discardableResult
    public func rewrap(_ location: RecordLocation, keyring: Keyring) throws(StoreError) -> Bool {
        let bytes = try readBytes(location)
        let updated: [UInt8]?
        do {
            updated = try AtRestRecord.rewrap(bytes, keyring: keyring, expecting: expectation(location))
        } catch {
            throw StoreError(error.located(location.path).description, record: error.located(location.path))
        }
        guard let updated else { return false }
        do { try AtomicFile.write(updated, to: location.path, durable: durable) } catch { throw StoreError("store \(RecordError.display(error.description, limit: 4096))") }
        return true
    }

    func readBytes(_ location: RecordLocation) throws(StoreError) -> [UInt8] {
        do { return try AtomicFile.read(location.path) } catch { throw StoreError("store \(RecordError.display(error.description, limit: 4096))") }
    }

    func expectation(_ l: RecordLocation) -> ExpectedContext {
        ExpectedContext(storeID: storeID, namespace: l.namespace, name: l.name, uid: l.uid, generation: l.generation)
    }

    /// What a record keeps of a Secret: its type (API-defaulted) and data with stringData merged. Labels and
    /// annotations are not kept (annotations may hold plaintext copies, such as last-applied-configuration).
    public static func payload(of secret: Secret) -> RecordPayload {
        RecordPayload(type: secret.effectiveType, data: secret.mergedData)
    }

    /// The Secret manifest a record restores.
    public static func secret(_ payload: RecordPayload, context: RecordContext) -> Secret {
        Secret(metadata: ObjectMeta(name: context.name, namespace: context.namespace.isEmpty ? nil : context.namespace),
               type: payload.type, data: payload.data)
    }

    static func isAlnum(_ c: UInt8) -> Bool {
        (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c)
    }

    static func checkSegment(_ s: String, what: String) throws(StoreError) {
        guard !s.isEmpty, s.utf8.count <= 253, s != ".", s != "..", !s.hasPrefix("."),
              s.utf8.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") })
        else { throw StoreError("\(what) \"\(RecordError.display(s))\" is not a valid Kubernetes name") }
    }
}

extension String {
    func trimmingSuffixNewlines() -> String {
        var s = self
        while s.hasSuffix("\n") || s.hasSuffix("\r") { s.removeLast() }
        return s
    }
}
