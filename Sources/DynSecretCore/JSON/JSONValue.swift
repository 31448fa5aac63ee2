/// A JSON value that keeps object members in document order and numbers as written.
///
/// Kubernetes manifests are compared and re-emitted; keeping order and number text
/// means a value read and written again is unchanged.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// A number in its JSON text form (for example `1`, `-0.5`, `1e3`).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The string, when this value is one.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The object, when this value is one.
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The elements, when this value is an array.
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The member named `key`, when this value is an object that has it.
    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// A short name of the value's JSON type, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

/// A JSON object: members in insertion order, unique keys (a later duplicate replaces the earlier value in place).
public struct JSONObject: Sendable, Hashable {
    public private(set) var members: [(key: String, value: JSONValue)]

    public init() { members = [] }

    public init(_ members: [(String, JSONValue)]) {
        self.members = []
        self.members.reserveCapacity(members.count)
        for (k, v) in members { self[k] = v }
    }

    public var isEmpty: Bool { members.isEmpty }
    public var count: Int { members.count }
    public var keys: [String] { members.map(\.key) }

    /// Reads, replaces (in place), appends, or with `nil` removes a member.
    public subscript(key: String) -> JSONValue? {
        get {
            for m in members where m.key == key { return m.value }
            return nil
        }
        set {
            if let i = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[i].value = newValue } else { members.remove(at: i) }
            } else if let newValue {
                members.append((key, newValue))
            }
        }
    }

    /// Members as parsed: a later duplicate key replaces the earlier value at the earlier position.
    init(parsed: [(key: String, value: JSONValue)]) {
        if parsed.count <= 12 {
            // Small objects (nearly all of them): compare pairwise instead of hashing.
            var unique = true
            outer: for i in parsed.indices {
                for j in parsed.indices where j > i && parsed[i].key == parsed[j].key {
                    unique = false
                    break outer
                }
            }
            if unique {
                members = parsed
                return
            }
            members = []
            for m in parsed { self[m.key] = m.value }
            return
        }
        var seen = Set<String>(minimumCapacity: parsed.count)
        if parsed.allSatisfy({ seen.insert($0.key).inserted }) {
            members = parsed
        } else {
            members = []
            for m in parsed { self[m.key] = m.value }
        }
    }

    /// Appends without checking for an existing key; the caller guarantees uniqueness.
    mutating func appendUnchecked(_ key: String, _ value: JSONValue) {
        members.append((key, value))
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(members.count)
        for m in members {
            hasher.combine(m.key)
            hasher.combine(m.value)
        }
    }
}
