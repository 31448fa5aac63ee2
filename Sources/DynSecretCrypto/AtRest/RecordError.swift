/// A record that cannot be read or written, with a one-line message naming the record when known.
///
/// The message never contains key material or plaintext.
public struct RecordError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The bytes do not start with `KSR1`.
        public static let notARecord = Code("not-a-record")
        public static let unsupportedVersion = Code("unsupported-version")
        public static let unsupportedSuite = Code("unsupported-suite")
        /// The bytes end before a field does.
        public static let truncated = Code("truncated")
        /// A length, count or field value is out of range, or bytes follow the record.
        public static let malformed = Code("malformed")
        /// The ciphertext is shorter than a padded plaintext plus a 16-byte tag.
        public static let badPayloadLength = Code("bad-payload-length")
        /// The record names another store, namespace, Secret, uid or generation than where it was found.
        public static let contextMismatch = Code("context-mismatch")
        /// No slot can be opened with the keys given (unknown key ids, retired keys, no passphrase).
        public static let noUsableSlot = Code("no-usable-slot")
        /// A passphrase slot asks for more scrypt work or memory than readers allow.
        public static let scryptCost = Code("scrypt-cost")
        /// A slot did not authenticate: wrong key or passphrase, or a tampered header.
        public static let unwrapFailed = Code("unwrap-failed")
        /// The header MAC does not match: the header was changed after it was written.
        public static let headerMAC = Code("header-mac")
        /// The payload did not authenticate: the ciphertext or its context was changed.
        public static let payloadAuthentication = Code("payload-authentication")
        /// The decrypted payload is not in canonical form.
        public static let payloadMalformed = Code("payload-malformed")
        /// The payload padding holds non-zero bytes.
        public static let padding = Code("padding")
        /// OpenSSL failed.
        public static let crypto = Code("crypto")
    }

    public var code: Code
    public var message: String
    /// The file the record came from, when known.
    public var record: String?

    public init(_ code: Code, _ message: String, record: String? = nil) {
        self.code = code
        self.message = message
        self.record = record
    }

    /// This error naming `record`.
    public func located(_ record: String) -> RecordError {
        var e = self
        e.record = record
        return e
    }

    public var description: String {
        record.map { "record \(RecordError.display($0, limit: 4096)): \(message)" } ?? message
    }

    /// `text` made safe to show inside a one-line message: control characters (C0, DEL, C1, the Unicode line and
    /// paragraph separators, bidi controls) and backslashes escaped as `\u{XX}` / `\\`, and cut to about `limit`
    /// UTF-8 bytes with `…`.
    /// Record context strings come from the record itself (attacker-controlled in a bundle), so they are shown only
    /// through this.
    public static func display(_ text: String, limit: Int = 100) -> String {
        var out = ""
        var bytes = 0
        for scalar in text.unicodeScalars {
            let piece: String
            switch scalar.value {
            case 0x5C: piece = "\\\\"
            case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
                piece = "\\u{" + String(scalar.value, radix: 16) + "}"
            default: piece = String(scalar)
            }
            if bytes + piece.utf8.count > limit {
                out += "…"
                break
            }
            out += piece
            bytes += piece.utf8.count
        }
        return out
    }

    static func crypto(_ error: CryptoError) -> RecordError {
        RecordError(.crypto, error.description)
    }
}
