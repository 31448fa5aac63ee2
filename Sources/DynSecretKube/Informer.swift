public import DynSecretCore
internal import Synchronization

/// A change the informer saw, after its cache was updated.
public enum InformerEvent<Object: Sendable>: Sendable {
    case added(Object)
    case modified(Object)
    /// The object as the deletion event carried it (or, when that does not decode, as last cached).
    case deleted(Object)
    /// The cache holds a complete list (after the first list and after every relist).
    case synced(resourceVersion: String)
}

/// Informer statistics, for tests and metrics.
public struct InformerStatistics: Sendable {
    /// Full lists made (1 + relists after 410 Gone).
    public var lists = 0
    /// Completed lists (the cache has been complete at least once when > 0).
    public var syncs = 0
    /// Watch requests made (1 + reconnects).
    public var watches = 0
    /// Failures that led to a backoff.
    public var failures = 0
    /// Failures since the last list or watch event that succeeded (0: the API server answers).
    public var consecutiveFailures = 0
}

/// List-then-watch with a local cache, as client-go's informer: watches from the list's `resourceVersion`
/// with bookmarks, resumes from the last seen version when a watch ends or drops (backing off after
/// failures), relists on 410 Gone, and emits the cache changes as events. Time comes from the injected clock.
///
/// The cache holds each object as `transform` makes it from the API object (client-go's `SetTransform`), by namespace
/// and name, so a consumer keeps only what it needs and can read one namespace's objects directly. An object that
/// `transform` refuses is not cached (an earlier version stays); its deletion still removes it. Lists are
/// transformed page by page: a full list of the API objects is never held.
///
/// `include` narrows what the server's selectors send (for what no selector can say, an annotation): an object it
/// refuses is treated as not there, so one that stops matching leaves the cache with a `deleted` event.
public final class Informer<Object: Sendable>: Sendable {
    private struct Entry: Sendable {
        var resourceVersion: String
        var object: Object
    }

    private let client: KubeClient
    private let resource: KubeResource
    private let namespace: String?
    private let options: ListOptions
    private let clock: any Clock<Duration>
    private let transform: @Sendable (JSONValue) -> Object?
    private let include: (@Sendable (JSONValue) -> Bool)?
    /// namespace ("" for cluster-scoped kinds) → name → entry.
    private let cache = Mutex<[String: [String: Entry]]>([:])
    private let stats = Mutex(InformerStatistics())
    private let pageSize: Int
    private let maxBackoff: Duration

    /// An informer for `resource` in `namespace` (all namespaces when nil), filtered by `options`' selectors, caching
    /// what `transform` makes of each object.
    public init(client: KubeClient, resource: KubeResource, namespace: String? = nil, options: ListOptions = ListOptions(),
                clock: any Clock<Duration> = ContinuousClock(), pageSize: Int = 500, maxBackoff: Duration = .seconds(30),
                include: (@Sendable (JSONValue) -> Bool)? = nil, transform: @escaping @Sendable (JSONValue) -> Object?) {
        self.include = include
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.options = options
        self.clock = clock
        self.pageSize = pageSize
        self.maxBackoff = maxBackoff
        self.transform = transform
    }

    /// The cached objects by `namespace/name`.
    public var objects: [String: Object] {
        cache.withLock { c in
            var out: [String: Object] = [:]
            for (ns, m) in c { for (name, e) in m { out[ns + "/" + name] = e.object } }
            return out
        }
    }

    /// The cached objects of one namespace ("" for cluster-scoped kinds), by name.
    public func objects(in namespace: String) -> [String: Object] {
        cache.withLock { c in (c[namespace] ?? [:]).mapValues(\.object) }
    }

    /// One cached object and its resourceVersion.
    public func object(namespace: String, name: String) -> (object: Object, resourceVersion: String)? {
        cache.withLock { c in c[namespace]?[name].map { ($0.object, $0.resourceVersion) } }
    }

    /// Objects in the cache.
    public var count: Int { cache.withLock { c in c.values.reduce(0) { $0 + $1.count } } }

    /// Counters so far.
    public var statistics: InformerStatistics { stats.withLock { $0 } }

    /// True once the cache has held a complete list (for readiness checks).
    public var hasSynced: Bool { stats.withLock { $0.syncs > 0 } }

    static func identity(_ o: JSONValue) -> (namespace: String, name: String, resourceVersion: String) {
        let m = o["metadata"]
        return (m?["namespace"]?.stringValue ?? "", m?["name"]?.stringValue ?? "", m?["resourceVersion"]?.stringValue ?? "")
    }

    /// Runs until the consumer stops iterating (or the task is cancelled), yielding every change.
    public func events() -> AsyncStream<InformerEvent<Object>> {
        let (stream, continuation) = AsyncStream<InformerEvent<Object>>.makeStream()
        let task = Task {
            await self.run { continuation.yield($0) }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Runs in the calling task until it is cancelled, handing every change to `emit` as soon as the cache holds it
    /// (no stream between the informer and its consumer: one task switch less per event).
    public func run(_ emit: (InformerEvent<Object>) -> Void) async {
        var backoff: Duration = .milliseconds(100)
        var resourceVersion: String?
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    resourceVersion = try await relist(emit)
                    backoff = .milliseconds(100)
                    stats.withLock { $0.consecutiveFailures = 0 }
                }
                stats.withLock { $0.watches += 1 }
                var opts = options
                opts.resourceVersion = resourceVersion
                opts.allowWatchBookmarks = true
                opts.timeoutSeconds = 300
                // The API server answering the watch is success: a quiet watch after one failure is a healthy one.
                let opened: @Sendable () -> Void = { [weak self] in self?.stats.withLock { $0.consecutiveFailures = 0 } }
                for try await event in client.watch(resource, namespace: namespace, options: opts, onOpen: opened) {
                    let id = Self.identity(event.object)
                    var type = event.type
                    if let include, type == "ADDED" || type == "MODIFIED", !include(event.object) { type = "DELETED" }
                    switch type {
                    case "ADDED", "MODIFIED":
                        guard let object = transform(event.object) else { break }
                        let existed = cache.withLock { c in
                            c[id.namespace, default: [:]].updateValue(Entry(resourceVersion: id.resourceVersion, object: object), forKey: id.name) != nil
                        }
                        emit(existed ? .modified(object) : .added(object))
                    case "DELETED":
                        let cached = cache.withLock { c -> Entry? in
                            let e = c[id.namespace]?.removeValue(forKey: id.name)
                            if c[id.namespace]?.isEmpty == true { c[id.namespace] = nil }
                            return e
                        }
                        // An object `include` refuses is reported as last cached (and not at all when it never was).
                        if event.type != "DELETED" || include != nil {
                            // With `include`, only what was cached can leave (every other object's deletion is
                            // not this informer's business).
                            if let cached { emit(.deleted(cached.object)) }
                        } else if let object = transform(event.object) ?? cached?.object {
                            emit(.deleted(object))
                        }
                    case "BOOKMARK":
                        break
                    case "ERROR":
                        let status = KubeStatus(json: event.object)
                        throw KubeError(message: status?.message ?? "watch error", status: status, httpStatus: status?.code ?? 0)
                    default:
                        break
                    }
                    if !id.resourceVersion.isEmpty { resourceVersion = id.resourceVersion }
                    if backoff != .milliseconds(100) || stats.withLock({ $0.consecutiveFailures }) != 0 {
                        stats.withLock { $0.consecutiveFailures = 0 }
                    }
                    backoff = .milliseconds(100)
                }
            } catch let error as KubeError where error.httpStatus == 410 || error.status?.code == 410 {
                resourceVersion = nil  // relist
                continue
            } catch {
                if Task.isCancelled { break }
                stats.withLock {
                    $0.failures += 1
                    $0.consecutiveFailures += 1
                }
                do { try await clock.sleep(for: backoff) } catch { break }
                backoff = min(backoff * 2, maxBackoff)
            }
        }
    }

    /// Lists everything page by page, replaces the cache, emits the differences and `synced`; returns the list's
    /// version. An object whose resourceVersion is unchanged is not reported again.
    private func relist(_ emit: (InformerEvent<Object>) -> Void) async throws(KubeError) -> String {
        stats.withLock { $0.lists += 1 }
        var fresh: [String: [String: Entry]] = [:]
        var changes: [InformerEvent<Object>] = []
        let old = cache.withLock { $0 }
        let version = try await client.listEach(resource, namespace: namespace, options: options, pageSize: pageSize) { item in
            if let include, !include(item) { return }
            let id = Self.identity(item)
            let prev = old[id.namespace]?[id.name]
            if let prev, prev.resourceVersion == id.resourceVersion {
                fresh[id.namespace, default: [:]][id.name] = prev
                return
            }
            guard let object = transform(item) else {
                if let prev { fresh[id.namespace, default: [:]][id.name] = prev }
                return
            }
            fresh[id.namespace, default: [:]][id.name] = Entry(resourceVersion: id.resourceVersion, object: object)
            changes.append(prev == nil ? .added(object) : .modified(object))
        }
        cache.withLock { $0 = fresh }
        for (ns, m) in old {
            for (name, e) in m where fresh[ns]?[name] == nil { emit(.deleted(e.object)) }
        }
        for c in changes { emit(c) }
        stats.withLock { $0.syncs += 1 }
        emit(.synced(resourceVersion: version))
        return version
    }
}

extension Informer where Object == JSONValue {
    /// An informer caching the API objects as they are.
    public convenience init(client: KubeClient, resource: KubeResource, namespace: String? = nil, options: ListOptions = ListOptions(),
                            clock: any Clock<Duration> = ContinuousClock(), pageSize: Int = 500, maxBackoff: Duration = .seconds(30)) {
        self.init(client: client, resource: resource, namespace: namespace, options: options, clock: clock, pageSize: pageSize,
                  maxBackoff: maxBackoff, transform: { $0 })
    }

    /// The cached objects whose labels match `selector` (label selector syntax), in namespace/name order.
    public func objects(matching selector: String) throws(LabelSelectorError) -> [JSONValue] {
        let s = try LabelQuery(selector)
        return objects.filter { s.matches(object: $0.value) }.sorted { $0.key < $1.key }.map(\.value)
    }
}
