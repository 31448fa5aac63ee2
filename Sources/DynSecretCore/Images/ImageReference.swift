/// A container image reference, parsed and normalized as the kubelet does (distribution/reference).
///
/// `ubuntu` becomes `docker.io/library/ubuntu`; `index.docker.io/x/y` becomes `docker.io/x/y`;
/// a first component is a registry domain only when it contains `.` or `:`, is `localhost`, or has uppercase.
public struct ImageReference: Sendable, Equatable, CustomStringConvertible {
    /// Registry domain, with port: `docker.io`, `nvcr.io`, `localhost:5000`.
    public var domain: String
    /// Repository path: `library/ubuntu`, `nvidia/tritonserver`.
    public var path: String
    public var tag: String?
    public var digest: String?

    /// `domain/path`: the string the kubelet looks up in its credential keyring.
    public var name: String { domain + "/" + path }

    public var description: String {
        name + (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0 } ?? "")
    }

    static let defaultDomain = "docker.io"

    /// An error with distribution/reference's wording.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Parses `reference` as `ParseNormalizedNamed` does.
    public static func parse(_ reference: String) throws(ParseError) -> ImageReference {
        let s = Array(reference.utf8)
        if s.count == 64, s.allSatisfy(isLowerHex) {
            throw ParseError(message: "invalid repository name (\(reference)), cannot specify 64-byte hexadecimal strings")
        }
        // splitDockerDomain
        var domain: String
        var remainder: String
        if let slash = s.firstIndex(of: UInt8(ascii: "/")) {
            let first = String(decoding: s[..<slash], as: UTF8.self)
            let isDomain = first.contains(".") || first.contains(":") || first == "localhost" || first.lowercased() != first
            if isDomain {
                domain = first
                remainder = String(decoding: s[(slash + 1)...], as: UTF8.self)
            } else {
                domain = defaultDomain
                remainder = reference
            }
        } else {
            domain = defaultDomain
            remainder = reference
        }
        if domain == "index.docker.io" { domain = defaultDomain }
        if domain == defaultDomain && !remainder.contains("/") { remainder = "library/" + remainder }

        let remoteName = remainder.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? remainder
        if remoteName.lowercased() != remoteName {
            throw ParseError(message: "invalid reference format: repository name (\(remoteName)) must be lowercase")
        }
        let full = domain + "/" + remainder
        guard let ref = match(Array(full.utf8)) else {
            if full.isEmpty { throw ParseError(message: "repository name must have at least one component") }
            if match(Array(full.lowercased().utf8)) != nil { throw ParseError(message: "repository name must be lowercase") }
            throw ParseError(message: "invalid reference format")
        }
        if ref.path.utf8.count > 255 {
            throw ParseError(message: "repository name must not be more than 255 characters")
        }
        if let digest = ref.digest { try validateDigest(digest) }
        return ref
    }

    // MARK: - Grammar

    private static func isLowerHex(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) }
    private static func isHex(_ c: UInt8) -> Bool { isLowerHex(c) || (c >= 0x41 && c <= 0x46) }
    private static func isAlnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) }
    private static func isLowerAlnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7A) }
    private static func isWord(_ c: UInt8) -> Bool { isAlnum(c) || c == UInt8(ascii: "_") }

    /// Matches `domain/path[:tag][@digest]` where `full` always starts with a domain (after splitDockerDomain).
    private static func match(_ full: [UInt8]) -> ImageReference? {
        guard let slash = full.firstIndex(of: UInt8(ascii: "/")) else { return nil }
        let domain = full[..<slash]
        guard isDomainAndPort(domain) else { return nil }
        var rest = full[(slash + 1)...]
        var digest: String?
        if let at = rest.firstIndex(of: UInt8(ascii: "@")) {
            let d = rest[(at + 1)...]
            guard isDigest(d) else { return nil }
            digest = String(decoding: d, as: UTF8.self)
            rest = rest[..<at]
        }
        var tag: String?
        // A tag follows the last ':' after the last '/'.
        let lastSlash = rest.lastIndex(of: UInt8(ascii: "/"))
        if let colon = rest.lastIndex(of: UInt8(ascii: ":")), lastSlash.map({ colon > $0 }) ?? true {
            let t = rest[(colon + 1)...]
            guard isTag(t) else { return nil }
            tag = String(decoding: t, as: UTF8.self)
            rest = rest[..<colon]
        }
        let components = rest.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard !components.isEmpty, components.allSatisfy(isPathComponent) else { return nil }
        return ImageReference(domain: String(decoding: domain, as: UTF8.self), path: String(decoding: rest, as: UTF8.self), tag: tag, digest: digest)
    }

    /// `host[:port]`, host a DNS name (components `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`) or `[IPv6]`.
    private static func isDomainAndPort(_ d: ArraySlice<UInt8>) -> Bool {
        var host = d
        if let close = d.lastIndex(of: UInt8(ascii: "]")), d.first == UInt8(ascii: "[") {
            let inner = d[(d.startIndex + 1)..<close]
            guard !inner.isEmpty, inner.allSatisfy({ isHex($0) || $0 == UInt8(ascii: ":") }) else { return false }
            let after = d[(close + 1)...]
            if after.isEmpty { return true }
            guard after.first == UInt8(ascii: ":") else { return false }
            let port = after.dropFirst()
            return !port.isEmpty && port.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        }
        if let colon = d.firstIndex(of: UInt8(ascii: ":")) {
            let port = d[(colon + 1)...]
            guard !port.isEmpty, port.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return false }
            host = d[..<colon]
        }
        let labels = host.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        return !labels.isEmpty && labels.allSatisfy { l in
            guard let f = l.first, let e = l.last, isAlnum(f), isAlnum(e) else { return false }
            return l.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") }
        }
    }

    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
    private static func isPathComponent(_ c: ArraySlice<UInt8>) -> Bool {
        var i = c.startIndex
        func alnumRun() -> Bool {
            let start = i
            while i < c.endIndex, isLowerAlnum(c[i]) { i += 1 }
            return i > start
        }
        guard alnumRun() else { return false }
        while i < c.endIndex {
            let ch = c[i]
            if ch == UInt8(ascii: ".") {
                i += 1
            } else if ch == UInt8(ascii: "_") {
                i += 1
                if i < c.endIndex, c[i] == UInt8(ascii: "_") { i += 1 }
            } else if ch == UInt8(ascii: "-") {
                while i < c.endIndex, c[i] == UInt8(ascii: "-") { i += 1 }
            } else {
                return false
            }
            guard alnumRun() else { return false }
        }
        return true
    }

    /// `[\w][\w.-]{0,127}`
    private static func isTag(_ t: ArraySlice<UInt8>) -> Bool {
        guard let f = t.first, isWord(f), t.count <= 128 else { return false }
        return t.dropFirst().allSatisfy { isWord($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// `algorithm:hex{32,}` with algorithm `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*`.
    private static func isDigest(_ d: ArraySlice<UInt8>) -> Bool {
        guard let colon = d.firstIndex(of: UInt8(ascii: ":")) else { return false }
        let alg = d[..<colon]
        let hex = d[(colon + 1)...]
        guard hex.count >= 32, hex.allSatisfy(isHex) else { return false }
        for part in alg.split(omittingEmptySubsequences: false, whereSeparator: { "-_+.".utf8.contains($0) }) {
            guard let f = part.first, (f >= 0x41 && f <= 0x5A) || (f >= 0x61 && f <= 0x7A), part.allSatisfy(isAlnum) else { return false }
        }
        return true
    }

    private static func validateDigest(_ digest: String) throws(ParseError) {
        let parts = digest.split(separator: ":", maxSplits: 1)
        let alg = parts[0]
        let hex = parts[1]
        let lengths = ["sha256": 64, "sha384": 96, "sha512": 128]
        guard let want = lengths[String(alg)] else { throw ParseError(message: "unsupported digest algorithm") }
        guard hex.utf8.allSatisfy(isLowerHex) else { throw ParseError(message: "invalid checksum digest format") }
        guard hex.utf8.count == want else { throw ParseError(message: "invalid checksum digest length") }
    }
}
