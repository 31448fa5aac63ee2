/// A Kubernetes label selector (`matchLabels` + `matchExpressions`), as `metav1.LabelSelector`.
///
/// All requirements are ANDed; an empty selector matches everything.
public struct LabelSelector: Sendable, Equatable {
    /// One `matchExpressions` item.
    public struct Requirement: Sendable, Equatable {
        /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
        public var key: String
        public var op: String
        public var values: [String]

        public init(key: String, op: String, values: [String] = []) {
            self.key = key
            self.op = op
            self.values = values
        }
    }

    public var matchLabels: [String: String]
    public var matchExpressions: [Requirement]

    public init(matchLabels: [String: String] = [:], matchExpressions: [Requirement] = []) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    /// The selector in the API server's query form (`k=v,k in (a,b),k notin (a),k,!k`), for `labelSelector=`.
    public var queryString: String {
        var parts = matchLabels.keys.sorted(by: utf8Less).map { "\($0)=\(matchLabels[$0]!)" }
        for r in matchExpressions {
            switch r.op {
            case "In": parts.append("\(r.key) in (\(r.values.joined(separator: ",")))")
            case "NotIn": parts.append("\(r.key) notin (\(r.values.joined(separator: ",")))")
            case "Exists": parts.append(r.key)
            default: parts.append("!" + r.key)
            }
        }
        return parts.joined(separator: ",")
    }

    /// Whether `labels` satisfy every requirement.
    public func matches(_ labels: [String: String]) -> Bool {
        for (k, v) in matchLabels where labels[k] != v { return false }
        for r in matchExpressions {
            switch r.op {
            case "In": guard let v = labels[r.key], r.values.contains(v) else { return false }
            case "NotIn": if let v = labels[r.key], r.values.contains(v) { return false }
            case "Exists": if labels[r.key] == nil { return false }
            case "DoesNotExist": if labels[r.key] != nil { return false }
            default: return false
            }
        }
        return true
    }

    /// Decodes and validates a selector object at `path`, with the API server's rules.
    static func decode(_ object: JSONObject, path: String) throws(ManifestError) -> LabelSelector {
        let r = FieldReader(object, path: path)
        if let u = r.unknownFields(known: ["matchLabels", "matchExpressions"]).first {
            throw ManifestError("unknown field", field: u)
        }
        let labels = try r.stringMap("matchLabels")
        for (k, v) in labels.sorted(by: { utf8Less($0.key, $1.key) }) {
            if let p = labelKeyProblem(k) { throw ManifestError("invalid label key \(KubeNames.goQuote(k)): \(p)", field: r.child("matchLabels")) }
            if let p = labelValueProblem(v) { throw ManifestError("invalid label value \(KubeNames.goQuote(v)): \(p)", field: r.child("matchLabels") + "[\(k)]") }
        }
        var exprs: [Requirement] = []
        for (i, item) in (try r.array("matchExpressions") ?? []).enumerated() {
            let p = r.child("matchExpressions") + "[\(i)]"
            guard case .object(let o) = item else { throw ManifestError("expected object, got \(item.typeName)", field: p) }
            let e = FieldReader(o, path: p)
            if let u = e.unknownFields(known: ["key", "operator", "values"]).first { throw ManifestError("unknown field", field: u) }
            guard let key = try e.string("key"), !key.isEmpty else { throw ManifestError("required value", field: e.child("key")) }
            if let problem = labelKeyProblem(key) { throw ManifestError("invalid label key \(KubeNames.goQuote(key)): \(problem)", field: e.child("key")) }
            guard let op = try e.string("operator") else { throw ManifestError("required value", field: e.child("operator")) }
            let values = try e.stringArray("values")
            switch op {
            case "In", "NotIn":
                if values.isEmpty { throw ManifestError("must be specified when `operator` is 'In' or 'NotIn'", field: e.child("values")) }
            case "Exists", "DoesNotExist":
                if !values.isEmpty { throw ManifestError("may not be specified when `operator` is 'Exists' or 'DoesNotExist'", field: e.child("values")) }
            default:
                throw ManifestError("not a valid selector operator \(KubeNames.goQuote(op)) (In, NotIn, Exists, DoesNotExist)", field: e.child("operator"))
            }
            for (j, v) in values.enumerated() {
                if let problem = labelValueProblem(v) { throw ManifestError("invalid label value \(KubeNames.goQuote(v)): \(problem)", field: e.child("values") + "[\(j)]") }
            }
            exprs.append(Requirement(key: key, op: op, values: values))
        }
        return LabelSelector(matchLabels: labels, matchExpressions: exprs)
    }

    /// A label key: optional DNS-1123 subdomain prefix and `/`, then a name of at most 63 characters.
    static func labelKeyProblem(_ key: String) -> String? {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return "a qualified name may contain at most one '/'" }
        if parts.count == 2, let p = KubeNames.dns1123SubdomainProblems(String(parts[0])).first { return "prefix: \(p)" }
        return qualifiedNameProblem(String(parts.last!))
    }

    static func labelValueProblem(_ value: String) -> String? {
        value.isEmpty ? nil : qualifiedNameProblem(value)
    }

    private static func qualifiedNameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty { return "name part must be non-empty" }
        if bytes.count > 63 { return "must be no more than 63 characters" }
        func alnum(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
        let ok = alnum(bytes.first!) && alnum(bytes.last!) && bytes.allSatisfy { alnum($0) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
        return ok ? nil : "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    }
}

/// Namespace (and cluster) globs: Go `path.Match` syntax (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes), matched against
/// the whole name.
public enum NamespaceGlob {
    /// Whether the valid glob `pattern` matches all of `name`.
    public static func matches(_ pattern: String, _ name: String) -> Bool { GoGlob.match(pattern, name) }

    /// The longest pattern a policy may hold: room for character classes and escapes around a 63-character name,
    /// and a bound on the cost of matching it against every namespace.
    static let maxLength = 256

    /// The length of the shortest name `pattern` (a valid glob) can match: each literal, `?` and class takes one
    /// character, `*` none.
    static func shortestMatch(_ pattern: String) -> Int {
        var p = Array(pattern.unicodeScalars)[...]
        var n = 0
        while let c = p.first {
            p = p.dropFirst()
            switch c {
            case "*": continue
            case "\\": p = p.dropFirst()
            case "[":
                // Skip to the closing bracket (a `]` right after `[` or `[^` is a member; escapes are skipped).
                if p.first == "^" { p = p.dropFirst() }
                var first = true
                while let f = p.first {
                    p = p.dropFirst()
                    if f == "\\" { p = p.dropFirst() } else if f == "]" && !first { break }
                    first = false
                }
            default: break
            }
            n += 1
        }
        return n
    }

    /// Why `pattern` is not a valid Go glob (`ErrBadPattern`), or nil.
    static func problem(_ pattern: String) -> String? {
        var p = Array(pattern.unicodeScalars)[...]
        if p.isEmpty { return "empty pattern" }
        while let c = p.first {
            p = p.dropFirst()
            switch c {
            case "\\":
                guard p.first != nil else { return "trailing backslash" }
                p = p.dropFirst()
            case "[":
                if p.first == "^" { p = p.dropFirst() }
                var count = 0
                while true {
                    guard let f = p.first else { return "unterminated character class" }
                    if f == "]" && count > 0 { p = p.dropFirst(); break }
                    guard let rest = classChar(p) else { return "malformed character class" }
                    p = rest
                    if p.first == "-" {
                        guard let after = classChar(p.dropFirst()) else { return "malformed character range" }
                        p = after
                    }
                    count += 1
                }
            default: break
            }
        }
        return nil
    }

    private static func classChar(_ p: ArraySlice<Unicode.Scalar>) -> ArraySlice<Unicode.Scalar>? {
        guard let c = p.first, c != "-", c != "]" else { return nil }
        if c == "\\" { return p.count >= 2 ? p.dropFirst(2) : nil }
        return p.dropFirst()
    }
}
