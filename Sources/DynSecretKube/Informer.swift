public import DynSecretCore
internal import Synchronization

/// A change the informer saw, after its cache was updated.
public enum InformerEvent: Sendable {
    case added(JSONValue)
    case modified(JSONValue)
    case deleted(JSONValue)
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
}

/// List-then-watch with a local cache, as client-go's informer: watches from the list's `resourceVersion`
/// with bookmarks, resumes from the last seen version when a watch ends or drops (backing off after
/// failures), relists on 410 Gone, and emits the cache changes as events. Time comes from the injected clock.
public final class Informer: Sendable {
    private let client: KubeClient
    private let resource: KubeResource
    private let namespace: String?
    private let options: ListOptions
    private let clock: any Clock<Duration>
    private let cache = Mutex<[String: JSONValue]>([:])
    private let stats = Mutex(InformerStatistics())
    private let pageSize: Int
    private let maxBackoff: Duration

    /// An informer for `resource` in `namespace` (all namespaces when nil), filtered by `options`' selectors.
    public init(client: KubeClient, resource: KubeResource, namespace: String? = nil, options: ListOptions = ListOptions(),
                clock: any Clock<Duration> = ContinuousClock(), pageSize: Int = 500, maxBackoff: Duration = .seconds(30)) {
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.options = options
        self.clock = clock
        self.pageSize = pageSize
        self.maxBackoff = maxBackoff
    }

    /// The cached objects by `namespace/name`.
    public var objects: [String: JSONValue] { cache.withLock { $0 } }

    /// The cached objects whose labels match `selector` (label selector syntax), in namespace/name order.
    public func objects(matching selector: String) throws(LabelSelectorError) -> [JSONValue] {
        let s = try LabelQuery(selector)
        return cache.withLock { c in c.filter { s.matches(object: $0.value) }.sorted { $0.key < $1.key }.map(\.value) }
    }

    /// Counters so far.
    public var statistics: InformerStatistics { stats.withLock { $0 } }

    /// True once the cache has held a complete list (for readiness checks).
    public var hasSynced: Bool { stats.withLock { $0.syncs > 0 } }

    static func key(_ o: JSONValue) -> String {
        (o["metadata"]?["namespace"]?.stringValue ?? "") + "/" + (o["metadata"]?["name"]?.stringValue ?? "")
    }

    /// Runs until the consumer stops iterating (or the task is cancelled), yielding every change.
    public func events() -> AsyncStream<InformerEvent> {
        let (stream, continuation) = AsyncStream<InformerEvent>.makeStream()
        let task = Task { await self.run(continuation) }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func run(_ out: AsyncStream<InformerEvent>.Continuation) async {
        var backoff: Duration = .milliseconds(100)
        var resourceVersion: String?
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    resourceVersion = try await relist(out)
                    backoff = .milliseconds(100)
                }
                stats.withLock { $0.watches += 1 }
                var opts = options
                opts.resourceVersion = resourceVersion
                opts.allowWatchBookmarks = true
                opts.timeoutSeconds = 300
                for try await event in client.watch(resource, namespace: namespace, options: opts) {
                    let rv = event.object["metadata"]?["resourceVersion"]?.stringValue
                    switch event.type {
                    case "ADDED", "MODIFIED":
                        let existed = cache.withLock { c in
                            let had = c[Self.key(event.object)] != nil
                            c[Self.key(event.object)] = event.object
                            return had
                        }
                        out.yield(existed ? .modified(event.object) : .added(event.object))
                    case "DELETED":
                        cache.withLock { _ = $0.removeValue(forKey: Self.key(event.object)) }
                        out.yield(.deleted(event.object))
                    case "BOOKMARK":
                        break
                    case "ERROR":
                        let status = KubeStatus(json: event.object)
                        throw KubeError(message: status?.message ?? "watch error", status: status, httpStatus: status?.code ?? 0)
                    default:
                        break
                    }
                    if let rv, !rv.isEmpty { resourceVersion = rv }
                    backoff = .milliseconds(100)
                }
            } catch let error as KubeError where error.httpStatus == 410 || error.status?.code == 410 {
                resourceVersion = nil  // relist
                continue
            } catch {
                if Task.isCancelled { break }
                stats.withLock { $0.failures += 1 }
                do { try await clock.sleep(for: backoff) } catch { break }
                backoff = min(backoff * 2, maxBackoff)
            }
        }
        out.finish()
    }

    /// Lists everything, replaces the cache, emits the differences and `synced`; returns the list's version.
    private func relist(_ out: AsyncStream<InformerEvent>.Continuation) async throws(KubeError) -> String {
        stats.withLock { $0.lists += 1 }
        let list = try await client.listAll(resource, namespace: namespace, options: options, pageSize: pageSize)
        var fresh: [String: JSONValue] = [:]
        for item in list.items { fresh[Self.key(item)] = item }
        let old = cache.withLock { c in
            let o = c
            c = fresh
            return o
        }
        for (k, v) in old where fresh[k] == nil { out.yield(.deleted(v)) }
        for item in list.items {
            let k = Self.key(item)
            if let prev = old[k] {
                if prev != item { out.yield(.modified(item)) }
            } else {
                out.yield(.added(item))
            }
        }
        stats.withLock { $0.syncs += 1 }
        out.yield(.synced(resourceVersion: list.resourceVersion))
        return list.resourceVersion
    }
}
