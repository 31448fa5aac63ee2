internal import DynSecretCore
internal import Foundation

enum Patch {
    /// JSON merge patch (RFC 7386).
    static func merge(_ target: JSONValue, _ patch: JSONValue) -> JSONValue {
        guard case .object(let p) = patch else { return patch }
        var t = target.objectValue ?? JSONObject()
        for m in p.members {
            if m.value == .null { t[m.key] = nil } else { t[m.key] = merge(t[m.key] ?? .null, m.value) }
        }
        return .object(t)
    }

    /// Lists merged by a key under strategic merge patch, for the kinds served here.
    static let mergeKeys: [String: String] = ["imagePullSecrets": "name", "secrets": "name", "ownerReferences": "uid"]

    /// Strategic merge patch for the kinds served: maps merge as in a merge patch; `$patch: replace|delete`,
    /// `$retainKeys` and `$setElementOrder/…` directives are honoured or dropped; lists with a merge key
    /// (`imagePullSecrets`, ServiceAccount `secrets`, `ownerReferences`) merge by it; other lists are replaced.
    static func strategic(_ target: JSONValue, _ patch: JSONValue) throws(APIError) -> JSONValue {
        guard case .object(var p) = patch else { return patch }
        if let directive = p["$patch"]?.stringValue {
            switch directive {
            case "replace":
                p["$patch"] = nil
                return .object(stripDirectives(p))
            case "delete":
                return .null
            default:
                throw APIError.badRequest("unknown patch type: \(directive)")
            }
        }
        var t = target.objectValue ?? JSONObject()
        var retain: Set<String>?
        if let keys = p["$retainKeys"]?.arrayValue { retain = Set(keys.compactMap(\.stringValue)) }
        for m in p.members where !m.key.hasPrefix("$") {
            if m.value == .null {
                t[m.key] = nil
            } else if case .array(let items) = m.value, let mk = mergeKeys[m.key], case .array(let existing)? = t[m.key],
                      items.allSatisfy({ $0[mk] != nil }) {
                var merged = existing
                for item in items {
                    if let i = merged.firstIndex(where: { $0[mk] == item[mk] }) {
                        if item["$patch"]?.stringValue == "delete" { merged.remove(at: i) } else { merged[i] = try strategic(merged[i], item) }
                    } else if item["$patch"]?.stringValue != "delete" {
                        merged.append(.object(stripDirectives(item.objectValue ?? JSONObject())))
                    }
                }
                t[m.key] = .array(merged)
            } else if case .object = m.value {
                let v = try strategic(t[m.key] ?? .null, m.value)
                t[m.key] = v == .null ? nil : v
            } else {
                t[m.key] = m.value
            }
        }
        if let retain {
            for k in t.keys where !retain.contains(k) { t[k] = nil }
        }
        return .object(t)
    }

    static func stripDirectives(_ o: JSONObject) -> JSONObject {
        var out = JSONObject()
        for m in o.members where !m.key.hasPrefix("$") {
            if case .object(let inner) = m.value { out[m.key] = .object(stripDirectives(inner)) } else { out[m.key] = m.value }
        }
        return out
    }

    /// JSON patch (RFC 6902): add, remove, replace, test, move, copy.
    static func json(_ target: JSONValue, _ patch: JSONValue) throws(APIError) -> JSONValue {
        guard let ops = patch.arrayValue else { throw APIError.badRequest("json patch must be an array of operations") }
        var doc = target
        for op in ops {
            guard let kind = op["op"]?.stringValue, let path = op["path"]?.stringValue else {
                throw APIError.badRequest("json patch operation needs op and path")
            }
            let tokens = try pointer(path)
            switch kind {
            case "add", "replace":
                guard let v = op["value"] else { throw APIError.badRequest("json patch \(kind) needs a value") }
                doc = try set(doc, tokens[...], v, insert: kind == "add")
            case "remove":
                doc = try remove(doc, tokens[...])
            case "test":
                guard get(doc, tokens[...]) == op["value"] else { throw APIError(code: 422, reason: "Invalid", message: "the server rejected our request due to an error in our request") }
            case "move", "copy":
                guard let from = op["from"]?.stringValue, let v = get(doc, try pointer(from)[...]) else { throw APIError.badRequest("json patch \(kind): missing from") }
                if kind == "move" { doc = try remove(doc, try pointer(from)[...]) }
                doc = try set(doc, tokens[...], v, insert: true)
            default:
                throw APIError.badRequest("Unexpected kind: \(kind)")
            }
        }
        return doc
    }

    static func pointer(_ p: String) throws(APIError) -> [String] {
        guard p.hasPrefix("/") else { throw APIError.badRequest("json patch path \(KubeNames.goQuote(p)) must start with /") }
        return p.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    static func get(_ v: JSONValue, _ path: ArraySlice<String>) -> JSONValue? {
        guard let head = path.first else { return v }
        switch v {
        case .object(let o): return o[head].flatMap { get($0, path.dropFirst()) }
        case .array(let a): return Int(head).flatMap { $0 < a.count ? get(a[$0], path.dropFirst()) : nil }
        default: return nil
        }
    }

    static func set(_ v: JSONValue, _ path: ArraySlice<String>, _ value: JSONValue, insert: Bool) throws(APIError) -> JSONValue {
        guard let head = path.first else { return value }
        switch v {
        case .object(var o):
            if path.count > 1, o[head] == nil { throw APIError(code: 422, reason: "Invalid", message: "doc is missing path: /\(path.joined(separator: "/"))") }
            o[head] = try set(o[head] ?? .null, path.dropFirst(), value, insert: insert)
            return .object(o)
        case .array(var a):
            if head == "-", path.count == 1 { a.append(value); return .array(a) }
            guard let i = Int(head), i >= 0, i <= a.count else { throw APIError(code: 422, reason: "Invalid", message: "index out of range") }
            if path.count == 1 && insert { a.insert(value, at: i) } else {
                guard i < a.count else { throw APIError(code: 422, reason: "Invalid", message: "index out of range") }
                a[i] = try set(a[i], path.dropFirst(), value, insert: insert)
            }
            return .array(a)
        default:
            throw APIError(code: 422, reason: "Invalid", message: "doc is missing path")
        }
    }

    static func remove(_ v: JSONValue, _ path: ArraySlice<String>) throws(APIError) -> JSONValue {
        guard let head = path.first else { return .null }
        switch v {
        case .object(var o):
            guard let child = o[head] else { throw APIError(code: 422, reason: "Invalid", message: "Unable to remove nonexistent key: \(head): missing value") }
            if path.count == 1 { o[head] = nil } else { o[head] = try remove(child, path.dropFirst()) }
            return .object(o)
        case .array(var a):
            guard let i = Int(head), i >= 0, i < a.count else { throw APIError(code: 422, reason: "Invalid", message: "index out of range") }
            if path.count == 1 { a.remove(at: i) } else { a[i] = try remove(a[i], path.dropFirst()) }
            return .array(a)
        default:
            throw APIError(code: 422, reason: "Invalid", message: "doc is missing path")
        }
    }
}
