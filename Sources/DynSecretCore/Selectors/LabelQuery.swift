/// A Kubernetes label selector in its query-string form (`?labelSelector=`): equality (`k=v`, `k==v`, `k!=v`) and set-based
/// (`k in (a,b)`, `k notin (a)`, `k`, `!k`) requirements, all of which must hold.
public struct LabelQuery: Sendable, Equatable {
    public enum Operator: Sendable, Equatable { case equals, notEquals, inSet, notInSet, exists, doesNotExist }

    public struct Requirement: Sendable, Equatable {
        public var key: String
        public var op: Operator
        public var values: [String]
    }

    public private(set) var requirements: [Requirement] = []

    /// Parses `text`; an empty string selects everything.
    public init(_ text: String) throws(LabelSelectorError) {
        for raw in Self.splitTopLevel(text) {
            let part = Self.trim(raw)
            if part.isEmpty { continue }
            if part.hasPrefix("!") {
                requirements.append(Requirement(key: Self.trim(Substring(part.dropFirst())), op: .doesNotExist, values: []))
            } else if let r = part.firstRange(of: " notin ") ?? part.firstRange(of: " in ") {
                let set = Self.trim(part[r.upperBound...])
                guard set.hasPrefix("("), set.hasSuffix(")") else {
                    throw LabelSelectorError(message: "unable to parse requirement: found '\(set)', expected: '('")
                }
                let values = set.dropFirst().dropLast().split(separator: ",").map { Self.trim($0) }
                requirements.append(Requirement(key: Self.trim(part[..<r.lowerBound]), op: part[r].contains("notin") ? .notInSet : .inSet, values: values))
            } else if let r = part.firstRange(of: "!=") {
                requirements.append(Requirement(key: Self.trim(part[..<r.lowerBound]), op: .notEquals, values: [Self.trim(part[r.upperBound...])]))
            } else if let r = part.firstRange(of: "==") ?? part.firstRange(of: "=") {
                requirements.append(Requirement(key: Self.trim(part[..<r.lowerBound]), op: .equals, values: [Self.trim(part[r.upperBound...])]))
            } else {
                requirements.append(Requirement(key: part, op: .exists, values: []))
            }
        }
        for r in requirements where r.key.isEmpty || r.key.contains(" ") {
            throw LabelSelectorError(message: "unable to parse requirement: invalid label key \(KubeNames.goQuote(r.key))")
        }
    }

    /// True when `labels` satisfy every requirement.
    public func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { r in
            let v = labels[r.key]
            switch r.op {
            case .equals: return v == r.values[0]
            case .notEquals: return v != r.values[0]
            case .inSet: return v.map { r.values.contains($0) } ?? false
            case .notInSet: return v.map { !r.values.contains($0) } ?? true
            case .exists: return v != nil
            case .doesNotExist: return v == nil
            }
        }
    }

    /// True when the object's `metadata.labels` satisfy every requirement.
    public func matches(object: JSONValue) -> Bool {
        var labels: [String: String] = [:]
        for m in object["metadata"]?["labels"]?.objectValue?.members ?? [] { if let s = m.value.stringValue { labels[m.key] = s } }
        return matches(labels)
    }

    static func trim<S: StringProtocol>(_ s: S) -> String {
        var sub = Substring(s)
        while let f = sub.first, f == " " || f == "\t" { sub.removeFirst() }
        while let l = sub.last, l == " " || l == "\t" { sub.removeLast() }
        return String(sub)
    }

    /// Splits on commas outside parentheses.
    static func splitTopLevel(_ s: String) -> [String] {
        var out: [String] = []
        var depth = 0
        var cur = ""
        for c in s {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
            if c == ",", depth == 0 { out.append(cur); cur = "" } else { cur.append(c) }
        }
        out.append(cur)
        return out
    }
}

/// A label selector that does not parse.
public struct LabelSelectorError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
