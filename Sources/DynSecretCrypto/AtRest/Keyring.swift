internal import DynSecretCore

/// A 16-byte key id, shown as 32 lowercase hex digits.
public struct KeyID: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Parses 32 hex digits.
    public init?(hex: String) {
        let chars = Array(hex.utf8)
        guard chars.count == 2 * KSR1.kidSize else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: chars.count, by: 2) {
            guard let hi = Self.nibble(chars[i]), let lo = Self.nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
        }
        bytes = out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    public var description: String { Hex.encode(bytes) }
    public static func < (a: KeyID, b: KeyID) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

enum Hex {
    static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The role of a keyring key.
public enum KeyState: String, Sendable, CaseIterable {
    /// Encrypts new records; also decrypts. Exactly one key is primary.
    case primary
    /// Decrypts only: a former primary kept until every record is rewrapped.
    case decryptOnly = "decrypt-only"
    /// Kept out: its key bytes are deleted and it opens nothing; the id stays listed for the audit trail.
    case retired
}

/// One key-encryption key of a keyring.
public struct KeyringKey: Sendable {
    public let id: KeyID
    public var state: KeyState
    /// RFC 3339 creation time.
    public let created: String
    /// The 32 key bytes; nil once retired.
    let material: SecretBytes?
}

/// Key-encryption keys with ids: one primary encrypts, primary and decrypt-only keys decrypt, retired keys are kept out.
public struct Keyring: Sendable {
    public private(set) var keys: [KeyringKey]

    public static let apiVersion = "dynsecret.io/v1alpha1"
    public static let kind = "Keyring"

    init(keys: [KeyringKey]) { self.keys = keys }

    /// A keyring with one fresh primary key.
    public static func generate(now: String) throws(CryptoError) -> Keyring {
        var ring = Keyring(keys: [])
        try ring.rotate(now: now)
        return ring
    }

    /// The key new records are sealed with.
    public var primary: KeyringKey? { keys.first { $0.state == .primary } }

    /// The key bytes for `id` if that key may decrypt (primary or decrypt-only).
    func decryptionKey(_ id: KeyID) -> SecretBytes? {
        keys.first { $0.id == id && $0.state != .retired }?.material
    }

    /// Ids of the keys that may decrypt.
    public var usableIDs: Set<KeyID> { Set(keys.filter { $0.state != .retired }.map(\.id)) }

    /// Adds a fresh primary key; the previous primary becomes decrypt-only. Returns the new key's id.
    @discardableResult
    public mutating func rotate(now: String) throws(CryptoError) -> KeyID {
        let material = try SecretBytes.random(count: 32)
        let id = KeyID(bytes: try SecureRandom.bytes(KSR1.kidSize))
        for i in keys.indices where keys[i].state == .primary { keys[i].state = .decryptOnly }
        keys.append(KeyringKey(id: id, state: .primary, created: now, material: material))
        return id
    }

    /// Adds `material` under `id` (test vectors and imports).
    mutating func add(id: KeyID, material: SecretBytes, state: KeyState, created: String = "1970-01-01T00:00:00Z") {
        keys.append(KeyringKey(id: id, state: state, created: created, material: state == .retired ? nil : material))
    }

    /// Retires `id`: its bytes are dropped. The primary cannot be retired (rotate first).
    public mutating func retire(_ id: KeyID) throws(KeyringError) {
        guard let i = keys.firstIndex(where: { $0.id == id }) else { throw KeyringError("no key with id \(id) in the keyring") }
        switch keys[i].state {
        case .primary: throw KeyringError("key \(id) is the primary key; run 'dynsecret keys rotate' first so another key encrypts")
        case .retired: throw KeyringError("key \(id) is already retired")
        case .decryptOnly:
            keys[i] = KeyringKey(id: id, state: .retired, created: keys[i].created, material: nil)
        }
    }

    /// Finds a key by its full id or a unique prefix of at least 8 hex digits.
    public func find(_ text: String) throws(KeyringError) -> KeyID {
        let lower = text.lowercased()
        let matches = keys.filter { $0.id.description.hasPrefix(lower) }
        guard lower.count >= 8, matches.count == 1 else {
            throw KeyringError(matches.count > 1 ? "key id prefix \(text) matches \(matches.count) keys; give more digits" : "no key with id \(text) in the keyring")
        }
        return matches[0].id
    }

    // MARK: file form

    /// Parses the YAML (or JSON) keyring document; `source` names the file in errors.
    public static func decode(_ bytes: [UInt8], source: String) throws(KeyringError) -> Keyring {
        let docs: [ManifestDocument]
        do {
            docs = try ManifestReader.read(bytes, source: source)
        } catch {
            throw KeyringError("keyring \(error.description)")
        }
        guard docs.count == 1, case .object(let o) = docs[0].value else {
            throw KeyringError("keyring \(source): expected one Keyring document")
        }
        func fail(_ field: String, _ message: String) -> KeyringError { KeyringError("keyring \(source): \(field): \(message)") }
        guard o["kind"]?.stringValue == kind else { throw fail("kind", "expected \(kind)") }
        guard o["apiVersion"]?.stringValue == apiVersion else { throw fail("apiVersion", "expected \(apiVersion)") }
        guard let list = o["keys"]?.arrayValue else { throw fail("keys", "expected a list of keys") }
        var ring = Keyring(keys: [])
        for (i, item) in list.enumerated() {
            let field = "keys[\(i)]"
            guard case .object(let k) = item else { throw fail(field, "expected an object") }
            guard let kidText = k["kid"]?.stringValue, let id = KeyID(hex: kidText) else {
                throw fail("\(field).kid", "expected 32 lowercase hex digits")
            }
            guard let stateText = k["state"]?.stringValue, let state = KeyState(rawValue: stateText) else {
                throw fail("\(field).state", "expected primary, decrypt-only or retired")
            }
            let created = k["created"]?.stringValue ?? ""
            var material: SecretBytes?
            if state == .retired {
                guard k["key"] == nil else { throw fail("\(field).key", "a retired key must not keep its key bytes") }
            } else {
                guard let text = k["key"]?.stringValue, var raw = Base64.decode(text), raw.count == 32 else {
                    throw fail("\(field).key", "expected 32 bytes in base64")
                }
                material = SecretBytes(consuming: &raw)
            }
            guard !ring.keys.contains(where: { $0.id == id }) else { throw fail("\(field).kid", "duplicate key id \(id)") }
            ring.keys.append(KeyringKey(id: id, state: state, created: created, material: material))
        }
        let primaries = ring.keys.filter { $0.state == .primary }.count
        guard primaries == 1 else { throw fail("keys", "expected exactly one primary key, found \(primaries)") }
        return ring
    }

    /// The YAML file text. It holds key bytes: write it only with `AtomicFile` (mode 0600).
    public func encode() -> [UInt8] {
        var list: [JSONValue] = []
        for k in keys {
            var members: [(String, JSONValue)] = [
                ("kid", .string(k.id.description)), ("state", .string(k.state.rawValue)), ("created", .string(k.created)),
            ]
            if let m = k.material {
                var raw = m.copyBytes()
                members.append(("key", .string(Base64.encode(raw))))
                Cleanse.wipe(&raw)
            }
            list.append(.object(JSONObject(members)))
        }
        let top = JSONObject([("apiVersion", .string(Self.apiVersion)), ("kind", .string(Self.kind)), ("keys", .array(list))])
        return Array(YAMLWriter.document(.object(top)).utf8)
    }
}

/// A keyring that cannot be read, written or changed; the message says how to fix it.
public struct KeyringError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Keyring {
    /// The largest keyring file `load` reads.
    public static let maxFileBytes = 1 << 20

    /// Reads the keyring at `path`, refusing one that group or others can access (as ssh refuses such private keys),
    /// one owned by another user, and anything but a regular file (a symbolic link is not followed). The checks are
    /// made with `fstat` on the descriptor that is then read, so the file cannot be swapped in between.
    public static func load(path: String) throws(KeyringError) -> Keyring {
        try read(path, at: path, missing: " (create one with 'dynsecret keys generate --keyring \(path)')") { (st) throws(FileError) in
            if st.mode & 0o077 != 0 {
                throw FileError(path: path, message: "permissions 0\(String(st.mode, radix: 8)) are too open; it holds keys and must be private to its owner: run 'chmod 600 \(path)'")
            }
            if st.owner != AtomicFile.effectiveUser {
                throw FileError(path: path, message: "owned by user \(st.owner), not by this user (\(AtomicFile.effectiveUser)); it holds keys and must be private to its owner")
            }
        }
    }

    /// Reads a keyring mounted from a Kubernetes Secret volume, where the kubelet makes `path` a symbolic link into
    /// a `..data` directory, owned by root and readable by the pod's `fsGroup`. The link is resolved once and the
    /// target is read without following further links; it must be a regular file that others cannot access, that
    /// only its owner can write, and owned by this user or by root. Anything stricter (a 0600 file of this user)
    /// passes too.
    public static func loadMounted(path: String) throws(KeyringError) -> Keyring {
        try read(path, at: AtomicFile.resolvingLinks(path), missing: "") { (st) throws(FileError) in
            if st.mode & 0o027 != 0 {
                throw FileError(path: path, message: "permissions 0\(String(st.mode, radix: 8)) are too open; a mounted keyring may be group-readable at most (defaultMode 0440 or stricter)")
            }
            if st.owner != AtomicFile.effectiveUser && st.owner != 0 {
                throw FileError(path: path, message: "owned by user \(st.owner), neither this user (\(AtomicFile.effectiveUser)) nor root")
            }
        }
    }

    /// Reads and decodes the keyring file `target` (named `path` in errors) after `check` accepted its `fstat`;
    /// `missing` is appended to the "no such file" error. The bytes read are wiped.
    private static func read(_ path: String, at target: String, missing: String,
                             check: (FileStatus) throws(FileError) -> Void) throws(KeyringError) -> Keyring {
        var bytes: [UInt8]
        do {
            bytes = try AtomicFile.read(target, maxBytes: maxFileBytes, check: check)
        } catch {
            if error.isNoSuchFile { throw KeyringError("keyring \(path): no such file\(missing)") }
            throw KeyringError("keyring \(error.description)")
        }
        defer { Cleanse.wipe(&bytes) }
        return try decode(bytes, source: path)
    }

    /// Writes the keyring to `path` atomically with mode 0600. With `replace: false` an existing file at `path` is
    /// never replaced (the new file is hard-linked into place, which fails if anything is there).
    public func save(path: String, replace: Bool = true) throws(KeyringError) {
        var text = encode()
        defer { Cleanse.wipe(&text) }
        do {
            try AtomicFile.write(text, to: path, mode: 0o600, replace: replace)
        } catch {
            if error.isAlreadyExists { throw KeyringError("keyring \(path) already exists; use 'dynsecret keys rotate' to add a key") }
            throw KeyringError("keyring \(error.description)")
        }
    }

    /// Loads the keyring at `path`, lets `body` change it and saves it, all under an exclusive lock on the sibling file
    /// `PATH.lock`, so concurrent rotations or retirements never lose each other's changes.
    public static func update<R>(path: String, _ body: (inout Keyring) throws -> R) throws -> R {
        do {
            return try AtomicFile.withExclusiveLock(path + ".lock") {
                var ring = try load(path: path)
                let result = try body(&ring)
                try ring.save(path: path)
                return result
            }
        } catch let e as FileError {
            throw KeyringError("keyring lock \(e.description)")
        }
    }
}
