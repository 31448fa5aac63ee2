/// A Kubernetes `v1` ConfigMap: UTF-8 `data` and base64-encoded `binaryData`.
public struct ConfigMap: Sendable, Equatable {
    public var metadata: ObjectMeta
    public var data: [String: String]
    /// Decoded bytes.
    public var binaryData: [String: [UInt8]]
    public var immutable: Bool?

    public init(metadata: ObjectMeta, data: [String: String] = [:], binaryData: [String: [UInt8]] = [:], immutable: Bool? = nil) {
        self.metadata = metadata
        self.data = data
        self.binaryData = binaryData
        self.immutable = immutable
    }

    static let knownFields: Set<String> = ["apiVersion", "kind", "metadata", "data", "binaryData", "immutable"]

    /// Decodes a ConfigMap object, checking `apiVersion`/`kind` and field types; unknown field paths are returned, as
    /// `Secret.decode` does.
    public static func decode(_ value: JSONValue) throws(ManifestError) -> (configMap: ConfigMap, unknownFields: [String]) {
        guard case .object(let object) = value else { throw ManifestError("expected a ConfigMap object, got \(value.typeName)") }
        let r = FieldReader(object, path: "")
        let kind = try r.string("kind")
        let apiVersion = try r.string("apiVersion")
        guard kind == "ConfigMap" else {
            throw ManifestError("expected kind ConfigMap, got \(kind.map { KubeNames.goQuote($0) } ?? "no kind")", field: "kind")
        }
        guard apiVersion == "v1" else {
            throw ManifestError("expected apiVersion v1, got \(apiVersion.map { KubeNames.goQuote($0) } ?? "no apiVersion")", field: "apiVersion")
        }
        var unknown: [String] = []
        let metadata = try ObjectMeta(decoding: try r.object("metadata") ?? JSONObject(), path: "metadata", unknown: &unknown)
        var binary: [String: [UInt8]] = [:]
        if let d = try r.object("binaryData") {
            for m in d.members {
                switch m.value {
                case .null: binary[m.key] = []
                case .string(let s):
                    guard let bytes = Base64.decode(s) else { throw ManifestError("invalid base64 value", field: "binaryData[\(m.key)]") }
                    binary[m.key] = bytes
                default:
                    throw ManifestError("expected a base64 string, got \(m.value.typeName)", field: "binaryData[\(m.key)]")
                }
            }
        }
        let configMap = ConfigMap(metadata: metadata, data: try r.stringMap("data"), binaryData: binary, immutable: try r.bool("immutable"))
        unknown += r.unknownFields(known: knownFields)
        return (configMap, unknown)
    }

    /// The JSON form in the API's field order (`kind`, `apiVersion`, `metadata`, `immutable`, `data`, `binaryData`),
    /// map keys sorted by bytes, `binaryData` base64-encoded.
    public var json: JSONValue {
        var o = JSONObject()
        o.appendUnchecked("kind", .string("ConfigMap"))
        o.appendUnchecked("apiVersion", .string("v1"))
        o.appendUnchecked("metadata", metadata.json)
        if let immutable { o.appendUnchecked("immutable", .bool(immutable)) }
        if !data.isEmpty {
            o.appendUnchecked("data", .object(JSONObject(data.sorted { utf8Less($0.key, $1.key) }.map { ($0.key, JSONValue.string($0.value)) })))
        }
        if !binaryData.isEmpty {
            let members = binaryData.sorted { utf8Less($0.key, $1.key) }.map { ($0.key, JSONValue.string(Base64.encode($0.value))) }
            o.appendUnchecked("binaryData", .object(JSONObject(members)))
        }
        return .object(o)
    }
}

/// The API server's ConfigMap rules (`ValidateConfigMap`, and `ValidateConfigMapUpdate` when the stored object is
/// given), with its wording; shared by `validate` and the test API server.
public enum ConfigMapAPIRules {
    /// The most bytes `data` and `binaryData` values may take together.
    public static let maxSize = 1_048_576

    /// The violations of `configMap`; `old` is the stored object on update.
    public static func violations(_ configMap: ConfigMap, old: ConfigMap? = nil) -> [SecretAPIRules.Violation] {
        var out: [SecretAPIRules.Violation] = []
        func add(_ rule: ValidationRule, _ field: String, _ message: String) { out.append(.init(rule: rule, field: field, message: message)) }
        if let old, old.immutable == true {
            if configMap.immutable != true { add(.configMapImmutableField, "immutable", "Forbidden: field is immutable when `immutable` is set") }
            if configMap.data != old.data { add(.configMapImmutableField, "data", "Forbidden: field is immutable when `immutable` is set") }
            if configMap.binaryData != old.binaryData { add(.configMapImmutableField, "binaryData", "Forbidden: field is immutable when `immutable` is set") }
        }
        var total = 0
        for key in configMap.data.keys.sorted(by: utf8Less) {
            total += configMap.data[key]!.utf8.count
            for p in SecretAPIRules.keyProblems(key) { add(.configMapKey, "data[\(key)]", "Invalid value: \(KubeNames.goQuote(key)): \(p)") }
            if configMap.binaryData[key] != nil {
                add(.configMapKey, "data[\(key)]", "Invalid value: \(KubeNames.goQuote(key)): duplicate of key present in binaryData")
            }
        }
        for key in configMap.binaryData.keys.sorted(by: utf8Less) {
            total += configMap.binaryData[key]!.count
            for p in SecretAPIRules.keyProblems(key) { add(.configMapKey, "binaryData[\(key)]", "Invalid value: \(KubeNames.goQuote(key)): \(p)") }
        }
        if total > maxSize { add(.configMapSize, "[]", "Too long: may not be more than \(maxSize) bytes") }
        let annotationBytes = configMap.metadata.annotations.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        if annotationBytes > SecretAPIRules.maxAnnotationBytes {
            add(.annotationsSize, "metadata.annotations", "Too long: may not be more than \(SecretAPIRules.maxAnnotationBytes) bytes")
        }
        return out
    }
}
