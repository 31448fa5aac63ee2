/// The parts of Go's `net/url.Parse` and `net.SplitHostPort` that the kubelet's keyring relies on.
struct GoURL: Equatable {
    var host: String   // host[:port] as written (userinfo removed)
    var path: String   // percent-decoded

    /// Parses `https://` + `rest` the way `url.Parse` does, or returns nil where Go returns an error.
    static func parseSchemeless(_ rest: String) -> GoURL? {
        var s = Substring(rest)
        // Control characters are rejected anywhere.
        if s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return nil }
        // Fragment, then query, are cut first.
        if let hash = s.firstIndex(of: "#") { s = s[..<hash] }
        if let q = s.firstIndex(of: "?") { s = s[..<q] }
        let authorityEnd = s.firstIndex(of: "/") ?? s.endIndex
        var authority = s[..<authorityEnd]
        let rawPath = s[authorityEnd...]
        if let at = authority.lastIndex(of: "@") {
            guard validUserinfo(authority[..<at]) else { return nil }
            authority = authority[authority.index(after: at)...]
        }
        guard validHost(authority), let path = percentDecode(rawPath) else { return nil }
        return GoURL(host: String(authority), path: path)
    }

    private static func validUserinfo(_ u: Substring) -> Bool {
        u.unicodeScalars.allSatisfy { c in
            isUnreserved(c) || "!$&'()*+,;=:%@".unicodeScalars.contains(c)
        }
    }

    private static func isUnreserved(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || "-._~".unicodeScalars.contains(c)
    }

    /// Go's `parseHost` + `validOptionalPort`: bracketed IPv6, or reg-name characters with an optional numeric port.
    private static func validHost(_ h: Substring) -> Bool {
        if h.hasPrefix("[") {
            guard let close = h.lastIndex(of: "]") else { return false }
            let port = h[h.index(after: close)...]
            return validOptionalPort(port)
        }
        if let colon = h.lastIndex(of: ":") {
            guard validOptionalPort(h[colon...]) else { return false }
        }
        // Go unescapes the host: only `%25` and escapes of non-ASCII bytes are allowed.
        var rest = Substring(h)
        while let pct = rest.firstIndex(of: "%") {
            let hex = rest[rest.index(after: pct)...].prefix(2)
            guard hex.count == 2, let v = UInt8(hex, radix: 16), v == 0x25 || v >= 0x80 else { return false }
            rest = rest[rest.index(pct, offsetBy: 3)...]
        }
        return h.unicodeScalars.allSatisfy { c in
            isUnreserved(c) || "!$&'()*+,;=:%[]<>\"".unicodeScalars.contains(c) || c.value >= 0x80
        } && !h.contains(" ")
    }

    private static func validOptionalPort(_ p: Substring) -> Bool {
        if p.isEmpty { return true }
        guard p.first == ":" else { return false }
        return p.dropFirst().allSatisfy { $0.isASCII && $0.isNumber }
    }

    private static func percentDecode(_ s: Substring) -> String? {
        guard s.contains("%") else { return String(s) }
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.first {
            bytes = bytes.dropFirst()
            if b == UInt8(ascii: "%") {
                guard bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `net.SplitHostPort`, falling back to the whole host and no port, as the kubelet's `SplitURL` does.
    var hostAndPort: (host: String, port: String) {
        let h = Substring(host)
        if h.hasPrefix("[") {
            guard let close = h.firstIndex(of: "]") else { return (host, "") }
            let after = h[h.index(after: close)...]
            guard after.first == ":", !after.dropFirst().contains(":") else { return (host, "") }
            return (String(h[h.index(after: h.startIndex)..<close]), String(after.dropFirst()))
        }
        guard let colon = h.lastIndex(of: ":") else { return (host, "") }
        if h[..<colon].contains(":") { return (host, "") }  // too many colons
        return (String(h[..<colon]), String(h[h.index(after: colon)...]))
    }
}

/// Go's `path/filepath.Match` on Unix, for one host label (no `/` inside).
///
/// A malformed pattern does not match: the kubelet ignores `filepath.Match`'s `ErrBadPattern` as a miss.
enum GoGlob {
    private enum Element {
        case star
        case one((Unicode.Scalar) -> Bool)
    }

    static func match(_ pattern: String, _ name: String) -> Bool {
        guard let elements = compile(Array(pattern.unicodeScalars)[...]) else { return false }
        let n = Array(name.unicodeScalars)
        // reachable[j]: the pattern prefix processed so far can consume exactly n[..<j].
        var reachable = [Bool](repeating: false, count: n.count + 1)
        reachable[0] = true
        for e in elements {
            var next = [Bool](repeating: false, count: n.count + 1)
            switch e {
            case .star:
                var on = false
                for j in 0...n.count {
                    if reachable[j] { on = true }
                    next[j] = on
                    if j < n.count, n[j] == "/" { on = false }
                }
            case .one(let test):
                for j in 0..<n.count where reachable[j] && n[j] != "/" && test(n[j]) { next[j + 1] = true }
            }
            reachable = next
        }
        return reachable[n.count]
    }

    private static func compile(_ pattern: ArraySlice<Unicode.Scalar>) -> [Element]? {
        var p = pattern
        var out: [Element] = []
        while let c = p.first {
            switch c {
            case "*":
                p = p.dropFirst()
                if case .star? = out.last { continue }
                out.append(.star)
            case "?":
                p = p.dropFirst()
                out.append(.one { $0 != "/" })
            case "\\":
                guard let e = p.dropFirst().first else { return nil }
                p = p.dropFirst(2)
                out.append(.one { $0 == e })
            case "[":
                var rest = p.dropFirst()
                var negated = false
                if rest.first == "^" {
                    negated = true
                    rest = rest.dropFirst()
                }
                var ranges: [(Unicode.Scalar, Unicode.Scalar)] = []
                while true {
                    guard let f = rest.first else { return nil }
                    if f == "]" && !ranges.isEmpty {
                        rest = rest.dropFirst()
                        break
                    }
                    guard let (lo, afterLo) = classChar(rest) else { return nil }
                    var hi = lo
                    var after = afterLo
                    if after.first == "-" {
                        guard let (h, afterHi) = classChar(after.dropFirst()) else { return nil }
                        hi = h
                        after = afterHi
                    }
                    ranges.append((lo, hi))
                    rest = after
                }
                p = rest
                let r = ranges
                out.append(.one { ch in r.contains { $0.0.value <= ch.value && ch.value <= $0.1.value } != negated })
            default:
                p = p.dropFirst()
                out.append(.one { $0 == c })
            }
        }
        return out
    }

    private static func classChar(_ p: ArraySlice<Unicode.Scalar>) -> (Unicode.Scalar, ArraySlice<Unicode.Scalar>)? {
        guard let c = p.first, c != "-", c != "]" else { return nil }
        if c == "\\" {
            guard let e = p.dropFirst().first else { return nil }
            return (e, p.dropFirst(2))
        }
        return (c, p.dropFirst())
    }
}
