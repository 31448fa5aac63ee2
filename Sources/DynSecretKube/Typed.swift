public import DynSecretCore

/// A kind the client reads and writes as a Swift model.
public protocol KubeObject: Sendable {
    /// Where objects of this kind live.
    static var resource: KubeResource { get }
    /// Decodes an object as the API server returns it.
    init(kubeJSON: JSONValue) throws(KubeError)
    /// The object as sent to the API server.
    var kubeJSON: JSONValue { get }
    /// `metadata.namespace` (nil for cluster-scoped kinds).
    var kubeNamespace: String? { get }
    /// `metadata.name`.
    var kubeName: String? { get }
}

func decoded<T>(_ what: String, _ body: () throws(ManifestError) -> T) throws(KubeError) -> T {
    do { return try body() } catch { throw KubeError(message: "decoding \(what) from the API server: \(error.description)") }
}

extension Secret: KubeObject {
    public static var resource: KubeResource { .secrets }
    public init(kubeJSON: JSONValue) throws(KubeError) { self = try decoded("Secret") { () throws(ManifestError) in try Secret.decode(kubeJSON).secret } }
    public var kubeJSON: JSONValue { json }
    public var kubeNamespace: String? { metadata.namespace }
    public var kubeName: String? { metadata.name }
}

extension ReplicaObject {
    /// Decodes a Secret or ConfigMap as the API server returns it.
    public init(_ kind: ReplicatedKind, kubeJSON: JSONValue) throws(KubeError) {
        switch kind {
        case .secret: self = .secret(try Secret(kubeJSON: kubeJSON))
        case .configMap: self = .configMap(try ConfigMap(kubeJSON: kubeJSON))
        }
    }
}

extension ConfigMap: KubeObject {
    public static var resource: KubeResource { .configMaps }
    public init(kubeJSON: JSONValue) throws(KubeError) { self = try decoded("ConfigMap") { () throws(ManifestError) in try ConfigMap.decode(kubeJSON).configMap } }
    public var kubeJSON: JSONValue { json }
    public var kubeNamespace: String? { metadata.namespace }
    public var kubeName: String? { metadata.name }
}

extension ServiceAccount: KubeObject {
    public static var resource: KubeResource { .serviceAccounts }
    public init(kubeJSON: JSONValue) throws(KubeError) { self = try decoded("ServiceAccount") { () throws(ManifestError) in try ServiceAccount.decode(kubeJSON).serviceAccount } }
    public var kubeJSON: JSONValue { json }
    public var kubeNamespace: String? { metadata.namespace }
    public var kubeName: String? { metadata.name }
}

extension Namespace: KubeObject {
    public static var resource: KubeResource { .namespaces }
    public init(kubeJSON: JSONValue) throws(KubeError) { self = try decoded("Namespace") { () throws(ManifestError) in try Namespace.decode(kubeJSON).namespace } }
    public var kubeJSON: JSONValue { json }
    public var kubeNamespace: String? { nil }
    public var kubeName: String? { metadata.name }
}

extension Lease: KubeObject {
    public static var resource: KubeResource { .leases }
    public init(kubeJSON: JSONValue) throws(KubeError) { self = try decoded("Lease") { () throws(ManifestError) in try Lease.decode(kubeJSON).lease } }
    public var kubeJSON: JSONValue { json }
    public var kubeNamespace: String? { metadata.namespace }
    public var kubeName: String? { metadata.name }
}

extension Event: KubeObject {
    public static var resource: KubeResource { .events }
    public init(kubeJSON: JSONValue) throws(KubeError) { self = try decoded("Event") { () throws(ManifestError) in try Event.decode(kubeJSON).event } }
    public var kubeJSON: JSONValue { json }
    public var kubeNamespace: String? { metadata.namespace }
    public var kubeName: String? { metadata.name }
}

/// A page of typed objects.
public struct TypedList<T: KubeObject>: Sendable {
    public var items: [T]
    public var resourceVersion: String
    public var continueToken: String?
}

extension KubeClient {
    /// Reads one object of kind `T`.
    public func get<T: KubeObject>(_ type: T.Type, namespace: String? = nil, name: String) async throws(KubeError) -> T {
        try T(kubeJSON: try await get(T.resource, namespace: namespace, name: name))
    }

    /// Lists objects of kind `T` (every page when `pageSize` > 0).
    public func list<T: KubeObject>(_ type: T.Type, namespace: String? = nil, options: ListOptions = ListOptions(), pageSize: Int = 500) async throws(KubeError) -> TypedList<T> {
        let page = pageSize > 0 ? try await listAll(T.resource, namespace: namespace, options: options, pageSize: pageSize)
            : try await list(T.resource, namespace: namespace, options: options)
        var items: [T] = []
        items.reserveCapacity(page.items.count)
        for item in page.items { items.append(try T(kubeJSON: item)) }
        return TypedList(items: items, resourceVersion: page.resourceVersion, continueToken: page.continueToken)
    }

    /// Creates `object` (in its own namespace, or the configuration's).
    public func create<T: KubeObject>(_ object: T) async throws(KubeError) -> T {
        try T(kubeJSON: try await create(T.resource, namespace: object.kubeNamespace, object.kubeJSON))
    }

    /// Replaces `object`; 409 Conflict when its `resourceVersion` is stale.
    public func update<T: KubeObject>(_ object: T) async throws(KubeError) -> T {
        try T(kubeJSON: try await update(T.resource, namespace: object.kubeNamespace, object.kubeJSON))
    }

    /// Applies a JSON merge patch to an object of kind `T`.
    public func mergePatch<T: KubeObject>(_ type: T.Type, namespace: String? = nil, name: String, _ patch: JSONValue) async throws(KubeError) -> T {
        try T(kubeJSON: try await mergePatch(T.resource, namespace: namespace, name: name, patch))
    }

    /// Deletes an object of kind `T` if it still matches `preconditions`.
    public func delete<T: KubeObject>(_ type: T.Type, namespace: String? = nil, name: String, preconditions: DeletePreconditions? = nil) async throws(KubeError) {
        _ = try await delete(T.resource, namespace: namespace, name: name, preconditions: preconditions)
    }
}
