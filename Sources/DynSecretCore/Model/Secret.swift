/// A Kubernetes `v1` Secret.
///
/// `data` holds decoded bytes; `stringData` is kept separate, as written, until `mergedData` folds it in
/// the way the API server does on write.
public struct Secret: Sendable, Equatable {
    public var metadata: ObjectMeta
    /// The Secret type as written; empty means `Opaque` (API defaulting).
    public var type: String
    public var data: [String: [UInt8]]
    public var stringData: [String: String]
    public var immutable: Bool?

    public init(metadata: ObjectMeta, type: String = SecretType.opaque, data: [String: [UInt8]] = [:], stringData: [String: String] = [:], immutable: Bool? = nil) {
        self.metadata = metadata
        self.type = type
        self.data = data
        self.stringData = stringData
        self.immutable = immutable
    }

    /// The type after API defaulting: an empty type is `Opaque`.
    public var effectiveType: String { type.isEmpty ? SecretType.opaque : type }

    /// `data` with `stringData` merged in, overriding equal keys, as the API server stores it.
    public var mergedData: [String: [UInt8]] {
        var d = data
        for (k, v) in stringData { d[k] = Array(v.utf8) }
        return d
    }

    static let knownFields: Set<String> = ["apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"]

    /// Decodes a Secret object, checking `apiVersion`/`kind` and field types.
    ///
    /// Field names not in the API's Secret type are returned as `unknownFields` (paths) rather than dropped silently;
    /// callers decide whether they are an error (as kubectl's strict field validation makes them) or a finding.
    public static func decode(_ value: JSONValue) throws(ManifestError) -> (secret: Secret, unknownFields: [String]) {
        guard case .object(let object) = value else {
            throw ManifestError("expected a Secret object, got \(value.typeName)")
        }
        let r = FieldReader(object, path: "")
        let kind = try r.string("kind")
        let apiVersion = try r.string("apiVersion")
        guard kind == "Secret" else {
            throw ManifestError("expected kind Secret, got \(kind.map { KubeNames.goQuote($0) } ?? "no kind")", field: "kind")
        }
        guard apiVersion == "v1" else {
            throw ManifestError("expected apiVersion v1, got \(apiVersion.map { KubeNames.goQuote($0) } ?? "no apiVersion")", field: "apiVersion")
        }
        var unknown: [String] = []
        let metadata = try ObjectMeta(decoding: try r.object("metadata") ?? JSONObject(), path: "metadata", unknown: &unknown)
        var data: [String: [UInt8]] = [:]
        if let d = try r.object("data") {
            for m in d.members {
                switch m.value {
                case .null: data[m.key] = []
                case .string(let s):
                    guard let bytes = Base64.decode(s) else {
                        throw ManifestError("invalid base64 value", field: "data[\(m.key)]")
                    }
                    data[m.key] = bytes
                default:
                    throw ManifestError("expected a base64 string, got \(m.value.typeName)", field: "data[\(m.key)]")
                }
            }
        }
        let secret = Secret(
            metadata: metadata,
            type: try r.string("type") ?? "",
            data: data,
            stringData: try r.stringMap("stringData"),
            immutable: try r.bool("immutable")
        )
        unknown += r.unknownFields(known: knownFields)
        return (secret, unknown)
    }

    /// Decodes only what the kubelet reads from a pull secret: name, namespace, type and the one payload key
    /// (`data` or `stringData`). Other fields are not checked; use `decode` for validation.
    public static func decodePullSecretFields(_ value: JSONValue) throws(ManifestError) -> Secret {
        guard case .object(let object) = value else { throw ManifestError("expected a Secret object, got \(value.typeName)") }
        let r = FieldReader(object, path: "")
        let meta = FieldReader(try r.object("metadata") ?? JSONObject(), path: "metadata")
        var secret = Secret(metadata: ObjectMeta(name: try meta.string("name"), namespace: try meta.string("namespace")), type: try r.string("type") ?? "")
        guard let key = SecretType.pullSecretKey(forType: secret.effectiveType) else { return secret }
        if case .string(let s)? = try r.object("data")?[key] {
            guard let bytes = Base64.decode(s) else { throw ManifestError("invalid base64 value", field: "data[\(key)]") }
            secret.data[key] = bytes
        }
        if case .string(let s)? = try r.object("stringData")?[key] { secret.stringData[key] = s }
        return secret
    }

    /// The JSON form in the API's field order (`kind`, `apiVersion`, `metadata`, `immutable`, `data`, `stringData`, `type`),
    /// map keys sorted by bytes, data base64-encoded: the same bytes kubectl prints.
    public var json: JSONValue {
        var o = JSONObject()
        o.appendUnchecked("kind", .string("Secret"))
        o.appendUnchecked("apiVersion", .string("v1"))
        o.appendUnchecked("metadata", metadata.json)
        if let immutable { o.appendUnchecked("immutable", .bool(immutable)) }
        if !data.isEmpty {
            let members = data.sorted { utf8Less($0.key, $1.key) }.map { ($0.key, JSONValue.string(Base64.encode($0.value))) }
            o.appendUnchecked("data", .object(JSONObject(members)))
        }
        if !stringData.isEmpty {
            let members = stringData.sorted { utf8Less($0.key, $1.key) }.map { ($0.key, JSONValue.string($0.value)) }
            o.appendUnchecked("stringData", .object(JSONObject(members)))
        }
        if !type.isEmpty { o.appendUnchecked("type", .string(type)) }
        return .object(o)
    }

    /// `kubectl -o json` text.
    public var jsonText: [UInt8] { GoJSONWriter.indented(json) }

    /// `kubectl -o yaml` text.
    public var yamlText: String { YAMLWriter.document(json) }
}

/// Secret types known to the API server.
public enum SecretType {
    public static let opaque = "Opaque"
    public static let serviceAccountToken = "kubernetes.io/service-account-token"
    public static let dockercfg = "kubernetes.io/dockercfg"
    public static let dockerConfigJSON = "kubernetes.io/dockerconfigjson"
    public static let basicAuth = "kubernetes.io/basic-auth"
    public static let sshAuth = "kubernetes.io/ssh-auth"
    public static let tls = "kubernetes.io/tls"
    public static let bootstrapToken = "bootstrap.kubernetes.io/token"

    /// The data key that holds a pull secret's payload for `dockercfg` / `dockerconfigjson`.
    public static func pullSecretKey(forType type: String) -> String? {
        switch type {
        case dockerConfigJSON: ".dockerconfigjson"
        case dockercfg: ".dockercfg"
        default: nil
        }
    }
}
