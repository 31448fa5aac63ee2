/// A Kubernetes `v1` Event (core events API), as a controller records them on an object.
public struct Event: Sendable, Equatable {
    public var metadata: ObjectMeta
    /// The object the event is about: `kind`, `namespace`, `name`, `uid`, `apiVersion`, `resourceVersion`.
    public var involvedObject: [String: String]
    public var reason: String
    public var message: String
    /// `Normal` or `Warning`.
    public var type: String
    public var count: Int64?
    public var firstTimestamp: String?
    public var lastTimestamp: String?
    /// MicroTime (six fractional digits), for events written with `eventTime`.
    public var eventTime: String?
    public var sourceComponent: String?
    public var reportingComponent: String?
    public var reportingInstance: String?
    public var action: String?

    public init(metadata: ObjectMeta, involvedObject: [String: String], reason: String, message: String, type: String = "Normal") {
        self.metadata = metadata
        self.involvedObject = involvedObject
        self.reason = reason
        self.message = message
        self.type = type
    }

    static let knownFields: Set<String> = [
        "apiVersion", "kind", "metadata", "involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp",
        "count", "type", "eventTime", "series", "action", "related", "reportingComponent", "reportingInstance",
    ]
    static let referenceFields = ["kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"]

    /// Decodes an Event object; unknown field paths are returned, not dropped silently.
    public static func decode(_ value: JSONValue) throws(ManifestError) -> (event: Event, unknownFields: [String]) {
        guard case .object(let object) = value else { throw ManifestError("expected an Event object, got \(value.typeName)") }
        let r = FieldReader(object, path: "")
        guard try r.string("kind") == "Event" else { throw ManifestError("expected kind Event", field: "kind") }
        guard try r.string("apiVersion") == "v1" else { throw ManifestError("expected apiVersion v1", field: "apiVersion") }
        var unknown: [String] = []
        let metadata = try ObjectMeta(decoding: try r.object("metadata") ?? JSONObject(), path: "metadata", unknown: &unknown)
        let ref = FieldReader(try r.object("involvedObject") ?? JSONObject(), path: "involvedObject")
        var involved: [String: String] = [:]
        for k in referenceFields { if let v = try ref.string(k) { involved[k] = v } }
        var e = Event(metadata: metadata, involvedObject: involved, reason: try r.string("reason") ?? "", message: try r.string("message") ?? "",
                      type: try r.string("type") ?? "")
        e.count = try r.int64("count")
        e.firstTimestamp = try r.string("firstTimestamp")
        e.lastTimestamp = try r.string("lastTimestamp")
        e.eventTime = try r.string("eventTime")
        e.sourceComponent = try FieldReader(try r.object("source") ?? JSONObject(), path: "source").string("component")
        e.reportingComponent = try r.string("reportingComponent")
        e.reportingInstance = try r.string("reportingInstance")
        e.action = try r.string("action")
        unknown += r.unknownFields(known: knownFields)
        return (e, unknown)
    }

    /// The JSON form in the API's field order.
    public var json: JSONValue {
        var o = JSONObject()
        o.appendUnchecked("kind", .string("Event"))
        o.appendUnchecked("apiVersion", .string("v1"))
        o.appendUnchecked("metadata", metadata.json)
        var ref = JSONObject()
        for k in Self.referenceFields { if let v = involvedObject[k] { ref.appendUnchecked(k, .string(v)) } }
        o.appendUnchecked("involvedObject", .object(ref))
        o.appendUnchecked("reason", .string(reason))
        o.appendUnchecked("message", .string(message))
        if let sourceComponent { o.appendUnchecked("source", .object(JSONObject([("component", .string(sourceComponent))]))) }
        if let firstTimestamp { o.appendUnchecked("firstTimestamp", .string(firstTimestamp)) }
        if let lastTimestamp { o.appendUnchecked("lastTimestamp", .string(lastTimestamp)) }
        if let count { o.appendUnchecked("count", .number(String(count))) }
        if !type.isEmpty { o.appendUnchecked("type", .string(type)) }
        if let eventTime { o.appendUnchecked("eventTime", .string(eventTime)) }
        if let action { o.appendUnchecked("action", .string(action)) }
        if let reportingComponent { o.appendUnchecked("reportingComponent", .string(reportingComponent)) }
        if let reportingInstance { o.appendUnchecked("reportingInstance", .string(reportingInstance)) }
        return .object(o)
    }
}
