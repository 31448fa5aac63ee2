/// A Kubernetes `v1` ServiceAccount: the fields dynsecret reads and writes.
public struct ServiceAccount: Sendable, Equatable {
    public var metadata: ObjectMeta
    /// Names of pull secrets in the ServiceAccount's namespace, in order.
    public var imagePullSecrets: [String]
    /// `secrets` entries, kept as read.
    public var secrets: [JSONValue]
    public var automountServiceAccountToken: Bool?

    public init(metadata: ObjectMeta, imagePullSecrets: [String] = [], secrets: [JSONValue] = [], automountServiceAccountToken: Bool? = nil) {
        self.metadata = metadata
        self.imagePullSecrets = imagePullSecrets
        self.secrets = secrets
        self.automountServiceAccountToken = automountServiceAccountToken
    }

    static let knownFields: Set<String> = ["apiVersion", "kind", "metadata", "imagePullSecrets", "secrets", "automountServiceAccountToken"]

    /// Decodes a ServiceAccount object; unknown field paths are returned, not dropped silently.
    public static func decode(_ value: JSONValue) throws(ManifestError) -> (serviceAccount: ServiceAccount, unknownFields: [String]) {
        guard case .object(let object) = value else {
            throw ManifestError("expected a ServiceAccount object, got \(value.typeName)")
        }
        let r = FieldReader(object, path: "")
        guard try r.string("kind") == "ServiceAccount" else { throw ManifestError("expected kind ServiceAccount", field: "kind") }
        guard try r.string("apiVersion") == "v1" else { throw ManifestError("expected apiVersion v1", field: "apiVersion") }
        var unknown: [String] = []
        let metadata = try ObjectMeta(decoding: try r.object("metadata") ?? JSONObject(), path: "metadata", unknown: &unknown)
        var pullSecrets: [String] = []
        for (i, item) in (try r.array("imagePullSecrets") ?? []).enumerated() {
            guard case .object(let ref) = item else {
                throw ManifestError("expected an object, got \(item.typeName)", field: "imagePullSecrets[\(i)]")
            }
            pullSecrets.append(try FieldReader(ref, path: "imagePullSecrets[\(i)]").string("name") ?? "")
        }
        let sa = ServiceAccount(
            metadata: metadata,
            imagePullSecrets: pullSecrets,
            secrets: try r.array("secrets") ?? [],
            automountServiceAccountToken: try r.bool("automountServiceAccountToken")
        )
        unknown += r.unknownFields(known: knownFields)
        return (sa, unknown)
    }

    /// The JSON form in the API's field order.
    public var json: JSONValue {
        var o = JSONObject()
        o.appendUnchecked("kind", .string("ServiceAccount"))
        o.appendUnchecked("apiVersion", .string("v1"))
        o.appendUnchecked("metadata", metadata.json)
        if !secrets.isEmpty { o.appendUnchecked("secrets", .array(secrets)) }
        if !imagePullSecrets.isEmpty {
            o.appendUnchecked("imagePullSecrets", .array(imagePullSecrets.map { .object(JSONObject([("name", .string($0))])) }))
        }
        if let automountServiceAccountToken { o.appendUnchecked("automountServiceAccountToken", .bool(automountServiceAccountToken)) }
        return .object(o)
    }
}
