internal import DynSecretCore
internal import Foundation

/// Server-side printing: `meta.k8s.io/v1` `Table` answers for clients that ask for them
/// (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with the API server's columns per kind.
enum TablePrinter {
    struct Column {
        var name: String
        var type: String
        var format: String
        var description: String
        var cell: @Sendable (JSONObject, Date) -> JSONValue
    }

    static func wantsTable(_ accept: String?) -> Bool {
        guard let accept else { return false }
        return accept.split(separator: ",").first.map { $0.contains("as=Table") && $0.contains("g=meta.k8s.io") } ?? false
    }

    static func string(_ v: JSONValue?) -> JSONValue { .string(v?.stringValue ?? "") }

    static func age(_ o: JSONObject, _ now: Date) -> JSONValue {
        guard let ts = o["metadata"]?["creationTimestamp"]?.stringValue, let d = try? Date(ts, strategy: .iso8601) else { return .string("<unknown>") }
        return .string(humanDuration(now.timeIntervalSince(d)))
    }

    /// The API server's human duration (apimachinery `duration.HumanDuration`).
    static func humanDuration(_ interval: Double) -> String {
        let seconds = Int(interval.rounded(.down))
        if seconds < -1 { return "<invalid>" }
        if seconds < 0 { return "0s" }
        if seconds < 60 * 2 { return "\(seconds)s" }
        let minutes = seconds / 60
        if minutes < 10 {
            let s = seconds % 60
            return s == 0 ? "\(minutes)m" : "\(minutes)m\(s)s"
        }
        if minutes < 60 * 3 { return "\(minutes)m" }
        let hours = minutes / 60
        if hours < 8 {
            let m = minutes % 60
            return m == 0 ? "\(hours)h" : "\(hours)h\(m)m"
        }
        if hours < 48 { return "\(hours)h" }
        if hours < 24 * 8 {
            let h = hours % 24
            return h == 0 ? "\(hours / 24)d" : "\(hours / 24)d\(h)h"
        }
        if hours < 24 * 365 * 2 { return "\(hours / 24)d" }
        if hours < 24 * 365 * 8 {
            let d = (hours / 24) % 365
            return d == 0 ? "\(hours / 24 / 365)y" : "\(hours / 24 / 365)y\(d)d"
        }
        return "\(hours / 24 / 365)y"
    }

    static let nameColumn = Column(name: "Name", type: "string", format: "name",
                                   description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
                                   cell: { o, _ in string(o["metadata"]?["name"]) })
    static let ageColumn = Column(name: "Age", type: "string", format: "",
                                  description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                                  cell: { o, now in age(o, now) })

    static func columns(_ kind: Kind) -> [Column] {
        switch kind.kind {
        case "Secret":
            return [nameColumn,
                    Column(name: "Type", type: "string", format: "", description: "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
                           cell: { o, _ in string(o["type"]) }),
                    Column(name: "Data", type: "integer", format: "", description: "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
                           cell: { o, _ in .number(String(o["data"]?.objectValue?.count ?? 0)) }),
                    ageColumn]
        case "ConfigMap":
            return [nameColumn,
                    Column(name: "Data", type: "string", format: "", description: "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
                           cell: { o, _ in .number(String((o["data"]?.objectValue?.count ?? 0) + (o["binaryData"]?.objectValue?.count ?? 0))) }),
                    ageColumn]
        case "Namespace":
            return [nameColumn,
                    Column(name: "Status", type: "string", format: "", description: "The status of the namespace",
                           cell: { o, _ in string(o["status"]?["phase"]) }),
                    ageColumn]
        case "ServiceAccount":
            return [nameColumn,
                    Column(name: "Secrets", type: "string", format: "", description: "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                           cell: { o, _ in .number(String(o["secrets"]?.arrayValue?.count ?? 0)) }),
                    ageColumn]
        case "Lease":
            return [nameColumn,
                    Column(name: "Holder", type: "string", format: "", description: "holderIdentity contains the identity of the holder of a current lease.",
                           cell: { o, _ in string(o["spec"]?["holderIdentity"]) }),
                    ageColumn]
        case "Event":
            return [Column(name: "Last Seen", type: "string", format: "", description: "Time when this Event was last seen",
                           cell: { o, now in
                               let ts = o["lastTimestamp"]?.stringValue ?? o["eventTime"]?.stringValue ?? o["metadata"]?["creationTimestamp"]?.stringValue
                               guard let ts, let d = (try? Date(ts, strategy: .iso8601)) ?? (try? Date(ts, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))) else { return .string("<unknown>") }
                               return .string(humanDuration(now.timeIntervalSince(d)))
                           }),
                    Column(name: "Type", type: "string", format: "", description: "Type of this event (Normal, Warning), new types could be added in the future.",
                           cell: { o, _ in string(o["type"]) }),
                    Column(name: "Reason", type: "string", format: "", description: "Reason why the action was taken. It is human-readable. This field cannot be empty for new Events and it can have at most 128 characters.",
                           cell: { o, _ in string(o["reason"]) }),
                    Column(name: "Object", type: "string", format: "", description: "Object this event is about.",
                           cell: { o, _ in .string("\((o["involvedObject"]?["kind"]?.stringValue ?? "").lowercased())/\(o["involvedObject"]?["name"]?.stringValue ?? "")") }),
                    Column(name: "Message", type: "string", format: "", description: "A human-readable description of the status of this operation.",
                           cell: { o, _ in string(o["message"]) })]
        default:
            return [nameColumn, ageColumn]
        }
    }

    /// Wraps a watch sender so that object events carry one-row Tables.
    static func tableSender(_ kind: Kind, includeObject: String?, _ rawSend: @escaping @Sendable (WatchFrame) -> Void) -> @Sendable (WatchFrame) -> Void {
        { frame in
            if case .event(let type, .object(let o), _) = frame, type != "ERROR", type != "BOOKMARK" {
                let meta = JSONObject([("resourceVersion", o["metadata"]?["resourceVersion"] ?? .string(""))])
                rawSend(.event(type: type, object: table(kind, [o], metadata: meta, includeObject: includeObject)))
            } else {
                rawSend(frame)
            }
        }
    }

    /// A Table of `objects`; `metadata` is the list metadata (resourceVersion, continue).
    static func table(_ kind: Kind, _ objects: [JSONObject], metadata: JSONObject, includeObject: String?) -> JSONValue {
        let now = Date()
        let cols = columns(kind)
        let defs: [JSONValue] = cols.map {
            .object(JSONObject([("name", .string($0.name)), ("type", .string($0.type)), ("format", .string($0.format)),
                                ("description", .string($0.description)), ("priority", .number("0"))]))
        }
        let rows: [JSONValue] = objects.map { o in
            var row = JSONObject([("cells", .array(cols.map { $0.cell(o, now) }))])
            switch includeObject {
            case "None": break
            case "Object": row["object"] = .object(Store.withType(o, kind))
            default:
                row["object"] = .object(JSONObject([("kind", .string("PartialObjectMetadata")), ("apiVersion", .string("meta.k8s.io/v1")),
                                                    ("metadata", o["metadata"] ?? .object(JSONObject()))]))
            }
            return .object(row)
        }
        return .object(JSONObject([("kind", .string("Table")), ("apiVersion", .string("meta.k8s.io/v1")), ("metadata", .object(metadata)),
                                   ("columnDefinitions", .array(defs)), ("rows", .array(rows))]))
    }
}
