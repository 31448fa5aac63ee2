internal import DynSecretCore
internal import Foundation

extension LabelQuery {
    /// Parses a selector from a request, as a 400 on error.
    static func request(_ text: String) throws(APIError) -> LabelQuery {
        do { return try LabelQuery(text) } catch { throw APIError.badRequest(error.message) }
    }

    func matches(_ labels: JSONObject?) -> Bool {
        var d: [String: String] = [:]
        for m in labels?.members ?? [] { if let s = m.value.stringValue { d[m.key] = s } }
        return matches(d)
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
