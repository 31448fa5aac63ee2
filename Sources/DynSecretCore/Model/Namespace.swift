/// A Kubernetes `v1` Namespace.
public struct Namespace: Sendable, Equatable {
    public var metadata: ObjectMeta
    /// `spec.finalizers` (the API server adds `kubernetes`).
    public var finalizers: [String]
    /// `status.phase`: `Active` or `Terminating` (empty when unset).
    public var phase: String

    public init(metadata: ObjectMeta, finalizers: [String] = [], phase: String = "") {
        self.metadata = metadata
        self.finalizers = finalizers
        self.phase = phase
    }

    /// True while the namespace is being deleted (no new content can be created in it).
    public var isTerminating: Bool { phase == "Terminating" || metadata.deletionTimestamp != nil }

    static let knownFields: Set<String> = ["apiVersion", "kind", "metadata", "spec", "status"]

    /// Decodes a Namespace object; unknown field paths are returned, not dropped silently.
    public static func decode(_ value: JSONValue) throws(ManifestError) -> (namespace: Namespace, unknownFields: [String]) {
        guard case .object(let object) = value else { throw ManifestError("expected a Namespace object, got \(value.typeName)") }
        let r = FieldReader(object, path: "")
        guard try r.string("kind") == "Namespace" else { throw ManifestError("expected kind Namespace", field: "kind") }
        guard try r.string("apiVersion") == "v1" else { throw ManifestError("expected apiVersion v1", field: "apiVersion") }
        var unknown: [String] = []
        let metadata = try ObjectMeta(decoding: try r.object("metadata") ?? JSONObject(), path: "metadata", unknown: &unknown)
        let spec = FieldReader(try r.object("spec") ?? JSONObject(), path: "spec")
        let status = FieldReader(try r.object("status") ?? JSONObject(), path: "status")
        let ns = Namespace(metadata: metadata, finalizers: try spec.stringArray("finalizers"), phase: try status.string("phase") ?? "")
        unknown += r.unknownFields(known: knownFields)
        return (ns, unknown)
    }

    /// The JSON form in the API's field order.
    public var json: JSONValue {
        var o = JSONObject()
        o.appendUnchecked("kind", .string("Namespace"))
        o.appendUnchecked("apiVersion", .string("v1"))
        o.appendUnchecked("metadata", metadata.json)
        o.appendUnchecked("spec", .object(finalizers.isEmpty ? JSONObject() : JSONObject([("finalizers", .array(finalizers.map(JSONValue.string)))])))
        o.appendUnchecked("status", .object(phase.isEmpty ? JSONObject() : JSONObject([("phase", .string(phase))])))
        return .object(o)
    }
}
