/// A `coordination.k8s.io/v1` Lease (leader election).
public struct Lease: Sendable, Equatable {
    public var metadata: ObjectMeta
    public var holderIdentity: String?
    public var leaseDurationSeconds: Int64?
    /// MicroTime strings: RFC 3339 with exactly six fractional digits (see `Lease.microTime`).
    public var acquireTime: String?
    public var renewTime: String?
    public var leaseTransitions: Int64?

    public init(metadata: ObjectMeta, holderIdentity: String? = nil, leaseDurationSeconds: Int64? = nil,
                acquireTime: String? = nil, renewTime: String? = nil, leaseTransitions: Int64? = nil) {
        self.metadata = metadata
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTime = acquireTime
        self.renewTime = renewTime
        self.leaseTransitions = leaseTransitions
    }

    static let knownFields: Set<String> = ["apiVersion", "kind", "metadata", "spec"]
    static let specFields: Set<String> = ["holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions", "strategy", "preferredHolder"]

    /// A MicroTime as the API server requires it: `2026-11-26T15:00:00.000000Z` from seconds and microseconds since the epoch (UTC).
    public static func microTime(secondsSinceEpoch: Int64, microseconds: Int) -> String {
        let days = secondsSinceEpoch >= 0 ? secondsSinceEpoch / 86_400 : (secondsSinceEpoch - 86_399) / 86_400
        let secs = secondsSinceEpoch - days * 86_400
        // Civil date from days since 1970-01-01 (proleptic Gregorian).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func pad(_ v: Int64, _ n: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, n - s.count)) + s }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secs / 3600, 2)):\(pad(secs % 3600 / 60, 2)):\(pad(secs % 60, 2)).\(pad(Int64(microseconds), 6))Z"
    }

    /// Decodes a Lease object; unknown field paths are returned, not dropped silently.
    public static func decode(_ value: JSONValue) throws(ManifestError) -> (lease: Lease, unknownFields: [String]) {
        guard case .object(let object) = value else { throw ManifestError("expected a Lease object, got \(value.typeName)") }
        let r = FieldReader(object, path: "")
        guard try r.string("kind") == "Lease" else { throw ManifestError("expected kind Lease", field: "kind") }
        guard try r.string("apiVersion") == "coordination.k8s.io/v1" else { throw ManifestError("expected apiVersion coordination.k8s.io/v1", field: "apiVersion") }
        var unknown: [String] = []
        let metadata = try ObjectMeta(decoding: try r.object("metadata") ?? JSONObject(), path: "metadata", unknown: &unknown)
        let s = FieldReader(try r.object("spec") ?? JSONObject(), path: "spec")
        let lease = Lease(metadata: metadata, holderIdentity: try s.string("holderIdentity"), leaseDurationSeconds: try s.int64("leaseDurationSeconds"),
                          acquireTime: try s.string("acquireTime"), renewTime: try s.string("renewTime"), leaseTransitions: try s.int64("leaseTransitions"))
        unknown += r.unknownFields(known: knownFields) + s.unknownFields(known: specFields)
        return (lease, unknown)
    }

    /// The JSON form in the API's field order.
    public var json: JSONValue {
        var spec = JSONObject()
        if let holderIdentity { spec.appendUnchecked("holderIdentity", .string(holderIdentity)) }
        if let leaseDurationSeconds { spec.appendUnchecked("leaseDurationSeconds", .number(String(leaseDurationSeconds))) }
        if let acquireTime { spec.appendUnchecked("acquireTime", .string(acquireTime)) }
        if let renewTime { spec.appendUnchecked("renewTime", .string(renewTime)) }
        if let leaseTransitions { spec.appendUnchecked("leaseTransitions", .number(String(leaseTransitions))) }
        return .object(JSONObject([("kind", .string("Lease")), ("apiVersion", .string("coordination.k8s.io/v1")), ("metadata", metadata.json), ("spec", .object(spec))]))
    }
}
