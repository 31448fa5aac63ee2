internal import DynSecretCore
internal import Foundation

/// A parsed label selector: equality (`=`, `==`, `!=`) and set-based (`in`, `notin`, `key`, `!key`) requirements.
struct LabelSelector: Sendable {
    enum Op: Sendable { case eq, ne, inSet, notIn, exists, notExists }
    struct Requirement: Sendable {
        var key: String
        var op: Op
        var values: [String]
    }
    var requirements: [Requirement] = []

    init(_ text: String) throws(APIError) {
        for raw in Self.splitTopLevel(text) {
            let part = raw.trimmingCharacters(in: .whitespaces)
            if part.isEmpty { continue }
            if part.hasPrefix("!") {
                requirements.append(Requirement(key: String(part.dropFirst()).trimmingCharacters(in: .whitespaces), op: .notExists, values: []))
            } else if let r = part.range(of: " notin ") ?? part.range(of: " in ") {
                let key = part[..<r.lowerBound].trimmingCharacters(in: .whitespaces)
                let op: Op = part[r].contains("notin") ? .notIn : .inSet
                var set = part[r.upperBound...].trimmingCharacters(in: .whitespaces)
                guard set.hasPrefix("("), set.hasSuffix(")") else { throw APIError.badRequest("unable to parse requirement: found '\(set)', expected: '('") }
                set = String(set.dropFirst().dropLast())
                requirements.append(Requirement(key: key, op: op, values: set.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }))
            } else if let r = part.range(of: "!=") {
                requirements.append(Requirement(key: String(part[..<r.lowerBound]).trimmingCharacters(in: .whitespaces), op: .ne,
                                                values: [String(part[r.upperBound...]).trimmingCharacters(in: .whitespaces)]))
            } else if let r = part.range(of: "==") ?? part.range(of: "=") {
                requirements.append(Requirement(key: String(part[..<r.lowerBound]).trimmingCharacters(in: .whitespaces), op: .eq,
                                                values: [String(part[r.upperBound...]).trimmingCharacters(in: .whitespaces)]))
            } else {
                requirements.append(Requirement(key: part, op: .exists, values: []))
            }
        }
        for r in requirements where r.key.isEmpty || r.key.contains(" ") {
            throw APIError.badRequest("unable to parse requirement: invalid label key \(KubeNames.goQuote(r.key))")
        }
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

    func matches(_ labels: JSONObject?) -> Bool {
        requirements.allSatisfy { r in
            let v = labels?[r.key]?.stringValue
            switch r.op {
            case .eq: return v == r.values[0]
            case .ne: return v != r.values[0]
            case .inSet: return v.map { r.values.contains($0) } ?? false
            case .notIn: return v.map { !r.values.contains($0) } ?? true
            case .exists: return v != nil
            case .notExists: return v == nil
            }
        }
    }
}

/// A parsed field selector over the fields a kind supports.
struct FieldSelector: Sendable {
    var requirements: [(field: String, equal: Bool, value: String)] = []

    init(_ text: String, kind: Kind) throws(APIError) {
        for raw in text.split(separator: ",") {
            let part = String(raw)
            let (field, equal, value): (String, Bool, String)
            if let r = part.range(of: "!=") {
                (field, equal, value) = (String(part[..<r.lowerBound]), false, String(part[r.upperBound...]))
            } else if let r = part.range(of: "==") ?? part.range(of: "=") {
                (field, equal, value) = (String(part[..<r.lowerBound]), true, String(part[r.upperBound...]))
            } else {
                throw APIError.badRequest("invalid selector: '\(text)'; can't understand '\(part)'")
            }
            let f = field.trimmingCharacters(in: .whitespaces)
            guard f == "metadata.name" || f == "metadata.namespace" || kind.extraFieldLabels[f] != nil else {
                throw APIError.badRequest("field label not supported: \(f)")
            }
            requirements.append((f, equal, value.trimmingCharacters(in: .whitespaces)))
        }
    }

    func matches(_ o: JSONObject, kind: Kind) -> Bool {
        requirements.allSatisfy { r in
            let actual: String = switch r.field {
            case "metadata.name": o["metadata"]?["name"]?.stringValue ?? ""
            case "metadata.namespace": o["metadata"]?["namespace"]?.stringValue ?? ""
            default: kind.extraFieldLabels[r.field]?(o) ?? ""
            }
            return (actual == r.value) == r.equal
        }
    }
}
