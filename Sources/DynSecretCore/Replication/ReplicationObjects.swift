/// The kinds of object a rule replicates.
public enum ReplicatedKind: String, Sendable, Hashable, CaseIterable {
    case secret = "Secret"
    case configMap = "ConfigMap"

    /// The lower-case plural the API and kubectl's messages use (`secrets`, `configmaps`).
    public var plural: String { self == .secret ? "secrets" : "configmaps" }
}

/// A whole object the engine creates or updates: a Secret or a ConfigMap.
public enum ReplicaObject: Sendable, Equatable {
    case secret(Secret)
    case configMap(ConfigMap)

    public var kind: ReplicatedKind {
        switch self {
        case .secret: .secret
        case .configMap: .configMap
        }
    }

    public var metadata: ObjectMeta {
        get {
            switch self {
            case .secret(let s): s.metadata
            case .configMap(let c): c.metadata
            }
        }
        set {
            switch self {
            case .secret(var s): s.metadata = newValue; self = .secret(s)
            case .configMap(var c): c.metadata = newValue; self = .configMap(c)
            }
        }
    }

    public var namespace: String { metadata.namespace ?? "default" }
    public var name: String { metadata.name ?? "" }

    /// The Secret, when this is one.
    public var secret: Secret? { if case .secret(let s) = self { s } else { nil } }
    /// The ConfigMap, when this is one.
    public var configMap: ConfigMap? { if case .configMap(let c) = self { c } else { nil } }

    /// The JSON form (as the API server and kubectl write it).
    public var json: JSONValue {
        switch self {
        case .secret(let s): s.json
        case .configMap(let c): c.json
        }
    }

    /// `kubectl -o yaml` text.
    public var yamlText: String { YAMLWriter.document(json) }
}

/// The identity of an object the planner reads or writes: kind, namespace, name. Ordered by namespace, name, kind
/// (UTF-8 bytes), so plans are deterministic.
public struct ReplicaRef: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var kind: ReplicatedKind
    public var namespace: String
    public var name: String

    public init(_ kind: ReplicatedKind, _ namespace: String, _ name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    /// `namespace/name`, the form of `dynsecret.io/source` (the kind is the replica's own).
    public var key: String { namespace + "/" + name }

    /// `Secret ns/name` or `ConfigMap ns/name`.
    public var description: String { kind.rawValue + " " + key }

    public static func < (a: ReplicaRef, b: ReplicaRef) -> Bool {
        if a.namespace != b.namespace { return utf8Less(a.namespace, b.namespace) }
        if a.name != b.name { return utf8Less(a.name, b.name) }
        return utf8Less(a.kind.rawValue, b.kind.rawValue)
    }
}

/// A source as the planner reads it: identity, metadata to copy, and the content with its hash, computed once when
/// the source is read (a source change is hashed once, not once per target).
public struct SourceObject: Sendable, Equatable {
    public let kind: ReplicatedKind
    public let metadata: ObjectMeta
    /// The type after API defaulting (`Opaque` for an empty Secret type); empty for a ConfigMap.
    public let type: String
    /// The content as the API server stores it (`stringData` merged in); a ConfigMap's `data` as UTF-8.
    public let data: [String: [UInt8]]
    /// A ConfigMap's `binaryData` (empty for a Secret).
    public let binaryData: [String: [UInt8]]
    public let immutable: Bool?
    /// `sha256:HEX` over the canonical type and data (`ReplicaContentHash`).
    public let contentHash: String

    /// The source form of a Secret.
    public init(_ secret: Secret) {
        kind = .secret
        metadata = secret.metadata
        type = secret.effectiveType
        data = secret.mergedData
        binaryData = [:]
        immutable = secret.immutable
        contentHash = ReplicaContentHash.of(type: type, data: data)
    }

    /// The source form of a ConfigMap.
    public init(_ configMap: ConfigMap) {
        kind = .configMap
        metadata = configMap.metadata
        type = ""
        data = configMap.data.mapValues { Array($0.utf8) }
        binaryData = configMap.binaryData
        immutable = configMap.immutable
        contentHash = ReplicaContentHash.of(configMap)
    }

    public var namespace: String { metadata.namespace ?? "default" }
    public var name: String { metadata.name ?? "" }
    /// `namespace/name`; for minted credentials (no namespace) `credentials:NAME,NAME`.
    public var key: String { namespace.isEmpty ? Self.mintedKeyPrefix + name : namespace + "/" + name }
    public var ref: ReplicaRef { ReplicaRef(kind, namespace, name) }

    /// The `dynsecret.io/source` prefix of a replica of minted credentials.
    public static let mintedKeyPrefix = "credentials:"
}

/// An object found at a target name, as the planner needs it and no more: identity, labels, annotations, type,
/// immutability, and the content hash of what is actually stored (computed on receipt, so a replica whose data was
/// edited by hand is still seen to differ). Its data is never kept: this is what a controller caches per replica.
///
/// The value of `kubectl.kubernetes.io/last-applied-configuration` (it can hold the whole object, data included) is
/// not kept either: the key maps to an empty string, which is all the planner needs (the key is never copied).
public struct TargetObject: Sendable, Equatable {
    public var kind: ReplicatedKind
    public var namespace: String
    public var name: String
    public var uid: String?
    public var resourceVersion: String?
    public var labels: [String: String]
    public var annotations: [String: String]
    /// The type after API defaulting.
    public var type: String
    public var immutable: Bool?
    /// `sha256:HEX` of the stored type and data (`ReplicaContentHash`), `stringData` merged in.
    public var contentHash: String
    /// The stored data keys, sorted (a write that removes a key must name it).
    public var dataKeys: [String]
    /// A ConfigMap's stored `binaryData` keys, sorted (empty for a Secret).
    public var binaryDataKeys: [String] = []
    /// The object carries `stringData` (manifests only; the API server never returns it).
    public var hasStringData: Bool
    /// Total bytes of the stored data values.
    public var dataSize: Int

    /// The compact form of `secret`. With an `interner`, repeated strings and label and annotation maps share storage.
    public init(_ secret: Secret, interner: inout ReplicationInterner) {
        let m = secret.metadata
        self.init(kind: .secret, namespace: m.namespace, name: m.name ?? "", uid: m.uid, resourceVersion: m.resourceVersion, labels: m.labels,
                  annotations: m.annotations, type: secret.effectiveType, immutable: secret.immutable, data: secret.mergedData, binaryData: [:],
                  hasStringData: !secret.stringData.isEmpty, interner: &interner)
    }

    /// The compact form of `configMap`.
    public init(_ configMap: ConfigMap, interner: inout ReplicationInterner) {
        let m = configMap.metadata
        self.init(kind: .configMap, namespace: m.namespace, name: m.name ?? "", uid: m.uid, resourceVersion: m.resourceVersion, labels: m.labels,
                  annotations: m.annotations, type: "", immutable: configMap.immutable, data: configMap.data.mapValues { Array($0.utf8) },
                  binaryData: configMap.binaryData, hasStringData: false, interner: &interner)
    }

    /// Every form ends here: identity interned, last-applied-configuration reduced to its key, the content hashed
    /// as its kind's (`ReplicaContentHash`), only keys and size kept of the content.
    private init(kind: ReplicatedKind, namespace: String?, name: String, uid: String?, resourceVersion: String?, labels: [String: String],
                 annotations: [String: String], type: String, immutable: Bool?, data: [String: [UInt8]], binaryData: [String: [UInt8]],
                 hasStringData: Bool, interner: inout ReplicationInterner) {
        self.kind = kind
        self.namespace = interner.intern(namespace ?? "default")
        self.name = interner.intern(name)
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.labels = interner.intern(labels)
        var annotations = annotations
        if annotations[ReplicaMarkers.lastApplied] != nil { annotations[ReplicaMarkers.lastApplied] = "" }
        self.annotations = interner.intern(annotations)
        self.type = interner.intern(type)
        self.immutable = immutable
        contentHash = interner.intern(kind == .secret ? ReplicaContentHash.of(type: type, data: data)
                                                      : ReplicaContentHash.of(configMapData: data, binaryData: binaryData))
        dataKeys = interner.intern(data.keys.sorted(by: utf8Less))
        binaryDataKeys = interner.intern(binaryData.keys.sorted(by: utf8Less))
        self.hasStringData = hasStringData
        dataSize = data.values.reduce(0) { $0 + $1.count } + binaryData.values.reduce(0) { $0 + $1.count }
    }

    /// The compact form of `configMap`, without sharing storage.
    public init(_ configMap: ConfigMap) {
        var interner = ReplicationInterner(limit: 0)
        self.init(configMap, interner: &interner)
    }

    /// The compact form of an object as the API server returns it (a list item or watch object), read straight from
    /// the JSON without building a `Secret`: the hot path of a controller's replica cache. Nil when a field the
    /// planner reads is not of the API's type or `data` is not base64 (decode it as a `Secret` for the error).
    public init?(apiObject o: JSONValue, interner: inout ReplicationInterner) {
        self.init(apiObject: o, kind: .secret, interner: &interner)
    }

    /// As `init?(apiObject:interner:)` for an object of `kind`; a ConfigMap's `data` is text, its `binaryData` base64.
    public init?(apiObject o: JSONValue, kind objectKind: ReplicatedKind, interner: inout ReplicationInterner) {
        guard case .object(let object) = o, let meta = object["metadata"]?.objectValue else { return nil }
        func strings(_ v: JSONValue?) -> [String: String]? {
            guard let v else { return [:] }
            if case .null = v { return [:] }
            guard let members = v.objectValue?.members else { return nil }
            var out: [String: String] = [:]
            out.reserveCapacity(members.count)
            for m in members {
                guard let s = m.value.stringValue else { return nil }
                out[m.key] = s
            }
            return out
        }
        func optionalString(_ v: JSONValue?) -> String?? {
            switch v {
            case nil, .null?: return .some(nil)
            case .string(let s)?: return .some(s)
            default: return .none
            }
        }
        guard let name = meta["name"]?.stringValue, case .some(let namespace) = optionalString(meta["namespace"]),
              case .some(let uid) = optionalString(meta["uid"]), case .some(let rv) = optionalString(meta["resourceVersion"]),
              case .some(let type) = optionalString(object["type"]),
              let labels = strings(meta["labels"]), let annotations = strings(meta["annotations"]),
              let encoded = strings(object["data"]) else { return nil }
        var immutable: Bool?
        switch object["immutable"] {
        case nil, .null?: immutable = nil
        case .bool(let b)?: immutable = b
        default: return nil
        }
        var data: [String: [UInt8]] = [:]
        data.reserveCapacity(encoded.count)
        var binary: [String: [UInt8]] = [:]
        let effectiveType: String
        switch objectKind {
        case .secret:
            for (k, v) in encoded {
                guard let bytes = Base64.decode(v) else { return nil }
                data[k] = bytes
            }
            effectiveType = (type ?? "").isEmpty ? SecretType.opaque : type!
        case .configMap:
            for (k, v) in encoded { data[k] = Array(v.utf8) }
            guard let binaryEncoded = strings(object["binaryData"]) else { return nil }
            for (k, v) in binaryEncoded {
                guard let bytes = Base64.decode(v) else { return nil }
                binary[k] = bytes
            }
            effectiveType = ""
        }
        self.init(kind: objectKind, namespace: namespace, name: name, uid: uid, resourceVersion: rv, labels: labels, annotations: annotations,
                  type: effectiveType, immutable: immutable, data: data, binaryData: binary, hasStringData: false, interner: &interner)
    }

    /// The compact form of `secret`, without sharing storage.
    public init(_ secret: Secret) {
        var interner = ReplicationInterner(limit: 0)
        self.init(secret, interner: &interner)
    }

    /// `namespace/name`.
    public var key: String { namespace + "/" + name }
    public var ref: ReplicaRef { ReplicaRef(kind, namespace, name) }

    /// Metadata as far as it is known: identity, labels and annotations.
    public var metadata: ObjectMeta {
        var m = ObjectMeta(name: name, namespace: namespace, labels: labels, annotations: annotations)
        m.uid = uid
        m.resourceVersion = resourceVersion
        return m
    }
}

/// Shares the storage of strings, string lists and string maps that repeat across cached objects (label keys and
/// values, rule ids, source names, content hashes of one source version): one copy for 20,000 replicas instead of
/// 20,000. Bounded: past `limit` distinct entries it starts afresh (values already handed out stay valid; they just
/// stop being shared with later ones), so churn cannot grow it without end.
public struct ReplicationInterner: Sendable {
    private var strings: Set<String> = []
    private var lists: Set<[String]> = []
    private var maps: Set<[String: String]> = []
    /// Most distinct entries kept per table; 0 disables sharing.
    public let limit: Int

    public init(limit: Int = 1 << 16) { self.limit = limit }

    /// Distinct entries held (for tests and metrics).
    public var count: Int { strings.count + lists.count + maps.count }

    public mutating func intern(_ s: String) -> String {
        // Strings of up to 15 UTF-8 bytes are stored inline: sharing saves nothing.
        guard limit > 0, s.utf8.count > 15 else { return s }
        if let held = strings.firstIndex(of: s) { return strings[held] }
        if strings.count >= limit { strings.removeAll(keepingCapacity: true) }
        strings.insert(s)
        return s
    }

    public mutating func intern(_ list: [String]) -> [String] {
        guard limit > 0, !list.isEmpty else { return list }
        if let held = lists.firstIndex(of: list) { return lists[held] }
        if lists.count >= limit { lists.removeAll(keepingCapacity: true) }
        let shared = list.map { intern($0) }
        lists.insert(shared)
        return shared
    }

    public mutating func intern(_ map: [String: String]) -> [String: String] {
        guard limit > 0, !map.isEmpty else { return map }
        if let held = maps.firstIndex(of: map) { return maps[held] }
        if maps.count >= limit { maps.removeAll(keepingCapacity: true) }
        var shared: [String: String] = [:]
        shared.reserveCapacity(map.count)
        for (k, v) in map { shared[intern(k)] = intern(v) }
        maps.insert(shared)
        return shared
    }
}
