/// An `admission.k8s.io/v1` `AdmissionReview` request, as the API server sends it to a validating webhook.
///
/// Decoding is strict about what the decision needs (`uid`, `kind`, `operation`, `object`) and ignores the rest
/// (`userInfo`, `options`), as the API server's own decoder does for unknown fields.
public struct AdmissionRequest: Sendable, Equatable {
    /// Echoed in the response; the API server matches it.
    public var uid: String
    /// `request.kind`: the group, version and kind of `object` (`apps`, `v1`, `Deployment`).
    public var group: String
    public var version: String
    public var kind: String
    /// `request.resource.resource` (`deployments`) and `request.subResource` (`scale`, `status`, or empty).
    public var resource: String
    public var subResource: String
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    public var operation: String
    public var namespace: String
    public var name: String
    /// The object as it will be stored (absent for DELETE).
    public var object: JSONObject?
    /// The stored object an UPDATE replaces.
    public var oldObject: JSONObject?
    /// A dry run: answered exactly like a real request (the webhook has no side effects).
    public var dryRun: Bool

    /// Decodes an `AdmissionReview` body. Errors name the field and never quote the body.
    public static func decode(_ body: [UInt8]) throws(AdmissionReviewError) -> AdmissionRequest {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            throw AdmissionReviewError("the body is not JSON (\(error))")
        }
        guard case .object(let top) = value else { throw AdmissionReviewError("expected an AdmissionReview object, got \(value.typeName)") }
        guard top["apiVersion"]?.stringValue == "admission.k8s.io/v1", top["kind"]?.stringValue == "AdmissionReview" else {
            throw AdmissionReviewError("expected apiVersion admission.k8s.io/v1 and kind AdmissionReview (admissionReviewVersions: [v1])")
        }
        guard case .object(let r)? = top["request"] else { throw AdmissionReviewError("request: required object is missing") }
        func string(_ key: String, in o: JSONObject, path: String, required: Bool) throws(AdmissionReviewError) -> String {
            switch o[key] {
            case .string(let s)?:
                if required && s.isEmpty { throw AdmissionReviewError("\(path): required value is empty") }
                return s
            case nil, .null?:
                if required { throw AdmissionReviewError("\(path): required value is missing") }
                return ""
            case let v?:
                throw AdmissionReviewError("\(path): expected a string, got \(v.typeName)")
            }
        }
        func object(_ key: String) throws(AdmissionReviewError) -> JSONObject? {
            switch r[key] {
            case .object(let o)?: return o
            case nil, .null?: return nil
            case let v?: throw AdmissionReviewError("request.\(key): expected an object, got \(v.typeName)")
            }
        }
        guard case .object(let kind)? = r["kind"] else { throw AdmissionReviewError("request.kind: required object is missing") }
        let resource = try object("resource") ?? JSONObject()
        var request = AdmissionRequest(
            uid: try string("uid", in: r, path: "request.uid", required: true),
            group: try string("group", in: kind, path: "request.kind.group", required: false),
            version: try string("version", in: kind, path: "request.kind.version", required: true),
            kind: try string("kind", in: kind, path: "request.kind.kind", required: true),
            resource: try string("resource", in: resource, path: "request.resource.resource", required: false),
            subResource: try string("subResource", in: r, path: "request.subResource", required: false),
            operation: try string("operation", in: r, path: "request.operation", required: true),
            namespace: try string("namespace", in: r, path: "request.namespace", required: false),
            name: try string("name", in: r, path: "request.name", required: false),
            object: try object("object"),
            oldObject: try object("oldObject"),
            dryRun: false)
        switch r["dryRun"] {
        case .bool(let b)?: request.dryRun = b
        case nil, .null?: break
        case let v?: throw AdmissionReviewError("request.dryRun: expected a boolean, got \(v.typeName)")
        }
        if request.namespace.isEmpty, let ns = request.object?["metadata"]?["namespace"]?.stringValue { request.namespace = ns }
        return request
    }

    /// A request; tests and benchmarks build them directly.
    public init(uid: String, group: String, version: String, kind: String, resource: String = "", subResource: String = "",
                operation: String, namespace: String, name: String = "", object: JSONObject?, oldObject: JSONObject? = nil, dryRun: Bool = false) {
        self.uid = uid
        self.group = group
        self.version = version
        self.kind = kind
        self.resource = resource
        self.subResource = subResource
        self.operation = operation
        self.namespace = namespace
        self.name = name
        self.object = object
        self.oldObject = oldObject
        self.dryRun = dryRun
    }
}

/// An `AdmissionReview` body that cannot be answered (the webhook replies 400 with this message).
public struct AdmissionReviewError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The answer to one `AdmissionRequest`.
public struct AdmissionResponse: Sendable, Equatable {
    public var uid: String
    public var allowed: Bool
    /// `status.code` and `status.message` of a denial.
    public var code: Int?
    public var message: String?
    /// Shown by kubectl as `Warning: …`; each at most `AdmissionResponse.maxWarningLength` characters.
    public var warnings: [String]

    /// The API server truncates longer warnings; the webhook shortens them itself, keeping the start.
    public static let maxWarningLength = 256
    /// At most this many warnings per response; the rest are counted in a last one.
    public static let maxWarnings = 8

    public init(uid: String, allowed: Bool, code: Int? = nil, message: String? = nil, warnings: [String] = []) {
        self.uid = uid
        self.allowed = allowed
        self.code = code
        self.message = message
        self.warnings = warnings
    }

    /// The `AdmissionReview` JSON the API server expects, members in the API type's order.
    public var json: JSONValue {
        var r = JSONObject([("uid", .string(uid)), ("allowed", .bool(allowed))])
        if !allowed || message != nil {
            var status = JSONObject()
            if let code { status["code"] = .number(String(code)) }
            if let message { status["message"] = .string(message) }
            r["status"] = .object(status)
        }
        if !warnings.isEmpty { r["warnings"] = .array(warnings.map(JSONValue.string)) }
        return .object(JSONObject([("apiVersion", .string("admission.k8s.io/v1")), ("kind", .string("AdmissionReview")), ("response", .object(r))]))
    }

    /// `json`, compact.
    public var body: [UInt8] { GoJSONWriter.compact(json) }

    /// `text` shortened to at most `maxWarningLength` characters, ending in `…` when cut.
    static func warning(_ text: String) -> String {
        guard text.count > maxWarningLength else { return text }
        return String(text.prefix(maxWarningLength - 1)) + "…"
    }
}
