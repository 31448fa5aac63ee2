internal import DynSecretCore
internal import Foundation

/// An API error as the API server reports it: HTTP code plus a `Status` body.
struct APIError: Error, Sendable {
    var code: Int
    var reason: String
    var message: String
    var details: JSONObject?
    /// Extra response headers (such as `Retry-After`).
    var headers: [(String, String)] = []

    var status: JSONValue {
        var o = JSONObject([
            ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object(JSONObject())),
            ("status", .string("Failure")), ("message", .string(message)),
        ])
        if !reason.isEmpty { o["reason"] = .string(reason) }  // `omitempty` in the API types
        if let details { o["details"] = .object(details) }
        o["code"] = .number(String(code))
        return .object(o)
    }

    static func details(name: String?, group: String = "", kind: String) -> JSONObject {
        var d = JSONObject()
        if let name { d["name"] = .string(name) }
        if !group.isEmpty { d["group"] = .string(group) }
        d["kind"] = .string(kind)
        return d
    }

    static func qualified(_ plural: String, _ group: String) -> String { group.isEmpty ? plural : "\(plural).\(group)" }

    static func notFound(_ plural: String, group: String = "", name: String) -> APIError {
        APIError(code: 404, reason: "NotFound", message: "\(qualified(plural, group)) \(KubeNames.goQuote(name)) not found",
                 details: details(name: name, group: group, kind: plural))
    }

    static func alreadyExists(_ plural: String, group: String = "", name: String) -> APIError {
        APIError(code: 409, reason: "AlreadyExists", message: "\(qualified(plural, group)) \(KubeNames.goQuote(name)) already exists",
                 details: details(name: name, group: group, kind: plural))
    }

    static func conflict(_ plural: String, group: String = "", name: String, _ why: String) -> APIError {
        APIError(code: 409, reason: "Conflict", message: "Operation cannot be fulfilled on \(qualified(plural, group)) \(KubeNames.goQuote(name)): \(why)",
                 details: details(name: name, group: group, kind: plural))
    }

    static let staleMessage = "the object has been modified; please apply your changes to the latest version and try again"

    static func badRequest(_ message: String) -> APIError {
        APIError(code: 400, reason: "BadRequest", message: message)
    }

    /// 422 Invalid with one cause per `field: Type…` error string.
    static func invalid(kind: String, group: String = "", name: String, errors: [String]) -> APIError {
        var causes: [JSONValue] = []
        for e in errors {
            // "field: Type[: rest]"
            let parts = e.components(separatedBy: ": ")
            let field = parts.first ?? ""
            let rest = parts.dropFirst().joined(separator: ": ")
            let type = parts.count > 1 ? parts[1] : ""
            let reason: String = switch type {
            case "Required value": "FieldValueRequired"
            case "Forbidden": "FieldValueForbidden"
            case "Too long": "FieldValueTooLong"
            case "Unsupported value": "FieldValueNotSupported"
            case "Duplicate value": "FieldValueDuplicate"
            default: "FieldValueInvalid"
            }
            causes.append(.object(JSONObject([("reason", .string(reason)), ("message", .string(rest)), ("field", .string(field))])))
        }
        var d = details(name: name, group: group, kind: kind)
        d["causes"] = .array(causes)
        return APIError(code: 422, reason: "Invalid", message: KubeNames.invalidMessage(kind: kind, name: name, errors: errors), details: d)
    }

    static func forbidden(user: String, verb: String, plural: String, group: String, namespace: String?, name: String?) -> APIError {
        var m = name.map { "\(qualified(plural, group)) \(KubeNames.goQuote($0)) is forbidden: " } ?? "\(qualified(plural, group)) is forbidden: "
        m += "User \(KubeNames.goQuote(user)) cannot \(verb) resource \(KubeNames.goQuote(plural)) in API group \(KubeNames.goQuote(group))"
        m += namespace.map { " in the namespace \(KubeNames.goQuote($0))" } ?? " at the cluster scope"
        return APIError(code: 403, reason: "Forbidden", message: m, details: details(name: name, group: group, kind: plural))
    }

    static let unauthorized = APIError(code: 401, reason: "Unauthorized", message: "Unauthorized")

    static func gone(_ message: String) -> APIError {
        APIError(code: 410, reason: "Expired", message: message)
    }

    static func methodNotAllowed() -> APIError {
        APIError(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
    }
}
