/// Kubernetes `ObjectMeta`: the fields dynsecret reads and writes, in the API's field order.
public struct ObjectMeta: Sendable, Equatable {
    public var name: String?
    public var generateName: String?
    public var namespace: String?
    public var selfLink: String?
    public var uid: String?
    public var resourceVersion: String?
    public var generation: Int64?
    /// RFC 3339 time; written as `null` when absent, as the API types do.
    public var creationTimestamp: String?
    public var deletionTimestamp: String?
    public var deletionGracePeriodSeconds: Int64?
    public var labels: [String: String]
    public var annotations: [String: String]
    /// Kept as read; dynsecret does not interpret owner references.
    public var ownerReferences: [JSONValue]
    public var finalizers: [String]
    /// Kept as read; dynsecret does not interpret managed fields.
    public var managedFields: [JSONValue]

    public init(name: String? = nil, namespace: String? = nil, labels: [String: String] = [:], annotations: [String: String] = [:]) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        ownerReferences = []
        finalizers = []
        managedFields = []
    }

    static let knownFields: Set<String> = [
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
        "ownerReferences", "finalizers", "managedFields",
    ]

    /// Decodes `metadata`; unknown fields are added to `unknown` as field paths.
    init(decoding object: JSONObject, path: String, unknown: inout [String]) throws(ManifestError) {
        let r = FieldReader(object, path: path)
        self.init()
        name = try r.string("name")
        generateName = try r.string("generateName")
        namespace = try r.string("namespace")
        selfLink = try r.string("selfLink")
        uid = try r.string("uid")
        resourceVersion = try r.string("resourceVersion")
        generation = try r.int64("generation")
        creationTimestamp = try r.string("creationTimestamp")
        deletionTimestamp = try r.string("deletionTimestamp")
        deletionGracePeriodSeconds = try r.int64("deletionGracePeriodSeconds")
        labels = try r.stringMap("labels")
        annotations = try r.stringMap("annotations")
        ownerReferences = try r.array("ownerReferences") ?? []
        finalizers = try r.stringArray("finalizers")
        managedFields = try r.array("managedFields") ?? []
        unknown += r.unknownFields(known: Self.knownFields)
    }

    /// The JSON form, in the API's field order, omitting empty fields except `creationTimestamp`.
    public var json: JSONValue {
        var o = JSONObject()
        func put(_ k: String, _ v: String?) { if let v, !v.isEmpty { o.appendUnchecked(k, .string(v)) } }
        func putInt(_ k: String, _ v: Int64?) { if let v, v != 0 { o.appendUnchecked(k, .number(String(v))) } }
        func putMap(_ k: String, _ m: [String: String]) {
            guard !m.isEmpty else { return }
            let members = m.sorted { utf8Less($0.key, $1.key) }.map { ($0.key, JSONValue.string($0.value)) }
            o.appendUnchecked(k, .object(JSONObject(members)))
        }
        put("name", name)
        put("generateName", generateName)
        put("namespace", namespace)
        put("selfLink", selfLink)
        put("uid", uid)
        put("resourceVersion", resourceVersion)
        putInt("generation", generation)
        o.appendUnchecked("creationTimestamp", creationTimestamp.map(JSONValue.string) ?? .null)
        put("deletionTimestamp", deletionTimestamp)
        if let deletionGracePeriodSeconds { o.appendUnchecked("deletionGracePeriodSeconds", .number(String(deletionGracePeriodSeconds))) }
        putMap("labels", labels)
        putMap("annotations", annotations)
        if !ownerReferences.isEmpty { o.appendUnchecked("ownerReferences", .array(ownerReferences)) }
        if !finalizers.isEmpty { o.appendUnchecked("finalizers", .array(finalizers.map(JSONValue.string))) }
        if !managedFields.isEmpty { o.appendUnchecked("managedFields", .array(managedFields)) }
        return .object(o)
    }
}
