public import DynSecretCore
internal import Foundation
internal import Synchronization

/// The API server's `Status` for a failed request.
public struct KubeStatus: Sendable, Equatable {
    /// HTTP status code (`code`).
    public var code: Int
    /// `reason`, such as `Conflict`, `AlreadyExists`, `Invalid`, `NotFound`, `Forbidden`, `Expired`.
    public var reason: String
    /// `message`, the API server's one-line explanation.
    public var message: String
    /// `details.causes`: field and message per problem (422 Invalid).
    public var causes: [(field: String, message: String)]

    public init(code: Int, reason: String, message: String, causes: [(field: String, message: String)] = []) {
        self.code = code
        self.reason = reason
        self.message = message
        self.causes = causes
    }

    /// Reads a `Status` object; nil when `value` is not one.
    public init?(json value: JSONValue) {
        guard value["kind"]?.stringValue == "Status" || value["code"] != nil else { return nil }
        code = value["code"].flatMap { if case .number(let n) = $0 { Int(n) } else { nil } } ?? 0
        reason = value["reason"]?.stringValue ?? ""
        message = value["message"]?.stringValue ?? ""
        causes = (value["details"]?["causes"]?.arrayValue ?? []).map { ($0["field"]?.stringValue ?? "", $0["message"]?.stringValue ?? "") }
    }

    public static func == (a: KubeStatus, b: KubeStatus) -> Bool {
        a.code == b.code && a.reason == b.reason && a.message == b.message
            && a.causes.map(\.field) == b.causes.map(\.field) && a.causes.map(\.message) == b.causes.map(\.message)
    }
}

/// A failed Kubernetes API call: the server's `Status` when it sent one, else a transport or decoding problem.
public struct KubeError: Error, Sendable, CustomStringConvertible {
    /// One line: the API server's message, or what went wrong on the way.
    public var message: String
    /// The server's `Status`, when the request reached it.
    public var status: KubeStatus?
    /// The HTTP status code, or 0 when no response arrived.
    public var httpStatus: Int

    public init(message: String, status: KubeStatus? = nil, httpStatus: Int = 0) {
        self.message = message
        self.status = status
        self.httpStatus = httpStatus
    }

    public var description: String { message }

    /// The `Status` reason (`Conflict`, `NotFound`, …), or empty.
    public var reason: String { status?.reason ?? "" }
}

/// A resource kind served by the API: where it lives and whether it is namespaced.
public struct KubeResource: Sendable, Hashable {
    /// API group (`""` for the core group).
    public var group: String
    /// API version, such as `v1`.
    public var version: String
    /// Resource name in URLs, such as `secrets`.
    public var plural: String
    /// Object kind, such as `Secret`.
    public var kind: String
    /// Whether objects live in namespaces.
    public var namespaced: Bool

    public init(group: String, version: String, plural: String, kind: String, namespaced: Bool) {
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
    }

    public static let secrets = KubeResource(group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true)
    public static let configMaps = KubeResource(group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true)
    public static let namespaces = KubeResource(group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false)
    public static let serviceAccounts = KubeResource(group: "", version: "v1", plural: "serviceaccounts", kind: "ServiceAccount", namespaced: true)
    public static let events = KubeResource(group: "", version: "v1", plural: "events", kind: "Event", namespaced: true)
    public static let leases = KubeResource(group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease", namespaced: true)

    /// Where objects of a replicated kind live.
    public static func of(_ kind: ReplicatedKind) -> KubeResource {
        switch kind {
        case .secret: .secrets
        case .configMap: .configMaps
        }
    }

    /// `apiVersion` of objects of this kind.
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// The collection path, in `namespace` when the kind is namespaced and a namespace is given.
    public func path(namespace: String?, name: String? = nil) -> String {
        var p = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        if namespaced, let namespace { p += "/namespaces/\(percentEncode(namespace))" }
        p += "/\(plural)"
        if let name { p += "/\(percentEncode(name))" }
        return p
    }
}

func percentEncode(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        let c = Character(Unicode.Scalar(b))
        if c.isASCII && (c.isLetter || c.isNumber || "-._~".contains(c)) { out.append(c) } else {
            out += "%" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
        }
    }
    return out
}

/// Options for a list or watch.
public struct ListOptions: Sendable {
    /// Label selector, such as `app=web,tier in (a,b)`.
    public var labelSelector: String?
    /// Field selector, such as `type=kubernetes.io/dockerconfigjson`.
    public var fieldSelector: String?
    /// Page size; 0 asks for everything at once.
    public var limit: Int = 0
    /// The `continue` token of the previous page.
    public var continueToken: String?
    /// Watch or list from this version.
    public var resourceVersion: String?
    /// Ask the server for bookmark events (watch).
    public var allowWatchBookmarks: Bool = false
    /// Server-side watch timeout.
    public var timeoutSeconds: Int?

    public init(labelSelector: String? = nil, fieldSelector: String? = nil, limit: Int = 0) {
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.limit = limit
    }

    var query: [(String, String)] {
        var q: [(String, String)] = []
        if let labelSelector, !labelSelector.isEmpty { q.append(("labelSelector", labelSelector)) }
        if let fieldSelector, !fieldSelector.isEmpty { q.append(("fieldSelector", fieldSelector)) }
        if limit > 0 { q.append(("limit", String(limit))) }
        if let continueToken, !continueToken.isEmpty { q.append(("continue", continueToken)) }
        if let resourceVersion { q.append(("resourceVersion", resourceVersion)) }
        return q
    }
}

/// One page of a list.
public struct ObjectList: Sendable {
    /// The items (with `kind`/`apiVersion` filled in).
    public var items: [JSONValue]
    /// The list's `resourceVersion`, to watch from.
    public var resourceVersion: String
    /// The token for the next page, or nil on the last page.
    public var continueToken: String?
}

/// A watch event.
public struct WatchEvent: Sendable {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    public var type: String
    /// The object (a `Status` for `ERROR`).
    public var object: JSONValue
}

/// Preconditions for a delete.
public struct DeletePreconditions: Sendable {
    /// Delete only the object with this `metadata.uid`.
    public var uid: String?
    /// Delete only if the object is still at this `metadata.resourceVersion`.
    public var resourceVersion: String?
    public init(uid: String? = nil, resourceVersion: String? = nil) {
        self.uid = uid
        self.resourceVersion = resourceVersion
    }
}

/// Retry policy for transient failures.
public struct RetryPolicy: Sendable {
    /// Attempts in all, including the first.
    public var maxAttempts: Int = 5
    /// First backoff; doubled each retry up to `maxDelay`.
    public var initialDelay: Duration = .milliseconds(100)
    /// Longest backoff between attempts.
    public var maxDelay: Duration = .seconds(5)
    /// Sleeps; replaced in tests.
    public var sleep: @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }

    public init() {}
}

/// A Kubernetes API client over the libcurl transport.
public final class KubeClient: Sendable {
    /// The configuration in use.
    public let config: KubeConfig
    /// The transport (for statistics).
    public let transport: CurlTransport
    private let tokens: TokenSource
    private let retry: RetryPolicy
    private let retries = Atomic<Int>(0)
    private let observer: (@Sendable (APIAnswer) -> Void)?
    private let limiter: RateLimiter?
    /// The client-side rate limit, when there is one (none by default: see `RateLimit`).
    public let rateLimit: RateLimit?

    /// A client for `config`, running at most `maxConcurrentRequests` requests at once (watches not counted) and, with
    /// a `rateLimit`, starting requests (retries and watches included) no faster than it allows.
    /// `observer` sees every request's outcome (`APIAnswer`), for metrics and health.
    public init(config: KubeConfig, maxConcurrentRequests: Int = 8, rateLimit: RateLimit? = nil, retry: RetryPolicy = RetryPolicy(),
                observer: (@Sendable (APIAnswer) -> Void)? = nil) {
        self.config = config
        self.transport = CurlTransport(settings: config.transport, maxConcurrentRequests: maxConcurrentRequests)
        self.tokens = TokenSource(config.credentials)
        self.retry = retry
        self.observer = observer
        self.rateLimit = rateLimit
        limiter = rateLimit.map { RateLimiter($0) }
    }

    /// Retries made so far (for tests and metrics).
    public var retryCount: Int { retries.load(ordering: .relaxed) }

    // MARK: typed verbs

    /// Reads one object.
    public func get(_ resource: KubeResource, namespace: String? = nil, name: String) async throws(KubeError) -> JSONValue {
        try await call("GET", resource.path(namespace: ns(resource, namespace), name: name))
    }

    /// Reads one page of objects (all namespaces when the kind is namespaced and `namespace` is nil).
    public func list(_ resource: KubeResource, namespace: String? = nil, options: ListOptions = ListOptions()) async throws(KubeError) -> ObjectList {
        let value = try await call("GET", resource.path(namespace: namespace), query: options.query)
        var items = value["items"]?.arrayValue ?? []
        for i in items.indices {
            if case .object(var o) = items[i] {
                if o["kind"] == nil {
                    var filled = JSONObject([("apiVersion", .string(resource.apiVersion)), ("kind", .string(resource.kind))])
                    for m in o.members { filled[m.key] = m.value }
                    o = filled
                }
                items[i] = .object(o)
            }
        }
        let meta = value["metadata"]
        let cont = meta?["continue"]?.stringValue
        return ObjectList(items: items, resourceVersion: meta?["resourceVersion"]?.stringValue ?? "", continueToken: cont?.isEmpty == false ? cont : nil)
    }

    /// Reads every page (following `continue`), `pageSize` objects per request.
    public func listAll(_ resource: KubeResource, namespace: String? = nil, options: ListOptions = ListOptions(), pageSize: Int = 500) async throws(KubeError) -> ObjectList {
        var all: [JSONValue] = []
        let version = try await listEach(resource, namespace: namespace, options: options, pageSize: pageSize) { all.append($0) }
        return ObjectList(items: all, resourceVersion: version, continueToken: nil)
    }

    /// Reads every page (following `continue`), `pageSize` objects per request, handing each object to `body` as its
    /// page arrives (no list of all objects is held); returns the list's resourceVersion.
    public func listEach(_ resource: KubeResource, namespace: String? = nil, options: ListOptions = ListOptions(), pageSize: Int = 500,
                         _ body: (JSONValue) -> Void) async throws(KubeError) -> String {
        var opts = options
        opts.limit = pageSize
        var page = try await list(resource, namespace: namespace, options: opts)
        page.items.forEach(body)
        var guardCount = 0
        while let token = page.continueToken, guardCount < 1_000_000 {
            guardCount += 1
            opts.continueToken = token
            page = try await list(resource, namespace: namespace, options: opts)
            page.items.forEach(body)
        }
        return page.resourceVersion
    }

    /// Creates an object (POST); 409 AlreadyExists when it exists.
    public func create(_ resource: KubeResource, namespace: String? = nil, _ object: JSONValue) async throws(KubeError) -> JSONValue {
        let n = ns(resource, namespace ?? object["metadata"]?["namespace"]?.stringValue)
        return try await call("POST", resource.path(namespace: n), body: GoJSONWriter.compact(object), contentType: "application/json")
    }

    /// Replaces an object (PUT); 409 Conflict when its `metadata.resourceVersion` is stale.
    public func update(_ resource: KubeResource, namespace: String? = nil, _ object: JSONValue) async throws(KubeError) -> JSONValue {
        guard let name = object["metadata"]?["name"]?.stringValue else { throw KubeError(message: "update: object has no metadata.name") }
        let n = ns(resource, namespace ?? object["metadata"]?["namespace"]?.stringValue)
        return try await call("PUT", resource.path(namespace: n, name: name), body: GoJSONWriter.compact(object), contentType: "application/json")
    }

    /// Applies a JSON merge patch (RFC 7386).
    public func mergePatch(_ resource: KubeResource, namespace: String? = nil, name: String, _ patch: JSONValue) async throws(KubeError) -> JSONValue {
        try await call("PATCH", resource.path(namespace: ns(resource, namespace), name: name), body: GoJSONWriter.compact(patch), contentType: "application/merge-patch+json")
    }

    /// Deletes an object, only if it still matches `preconditions` (409 Conflict otherwise).
    @discardableResult
    public func delete(_ resource: KubeResource, namespace: String? = nil, name: String, preconditions: DeletePreconditions? = nil) async throws(KubeError) -> JSONValue {
        var body: [UInt8]?
        if let p = preconditions {
            var pre = JSONObject()
            if let uid = p.uid { pre["uid"] = .string(uid) }
            if let rv = p.resourceVersion { pre["resourceVersion"] = .string(rv) }
            body = GoJSONWriter.compact(.object(JSONObject([("kind", .string("DeleteOptions")), ("apiVersion", .string("v1")), ("preconditions", .object(pre))])))
        }
        return try await call("DELETE", resource.path(namespace: ns(resource, namespace), name: name), body: body, contentType: body == nil ? nil : "application/json")
    }

    private func ns(_ resource: KubeResource, _ namespace: String?) -> String? {
        resource.namespaced ? (namespace ?? config.namespace) : nil
    }

    // MARK: watch

    /// Watches from `options.resourceVersion`. The stream ends when the server closes the watch; it throws
    /// `KubeError` for a failed request or a dropped connection. An `ERROR` event (such as 410 Expired) is
    /// delivered as an event. `onOpen` is called when the server has accepted the watch (its 200 head).
    public func watch(_ resource: KubeResource, namespace: String? = nil, options: ListOptions = ListOptions(),
                      onOpen: (@Sendable () -> Void)? = nil) -> AsyncThrowingStream<WatchEvent, any Error> {
        watchStream(resource, namespace: namespace, options: options, onOpen: onOpen) { line in
            guard let v = try? JSONParser.parse(line), let type = v["type"]?.stringValue, let obj = v["object"] else { return nil }
            return WatchEvent(type: type, object: obj)
        }
    }

    /// The same watch as `watch`, as its raw event lines (JSON, without the newline), for a consumer that reads
    /// only part of each event; the lines are not checked.
    public func watchLines(_ resource: KubeResource, namespace: String? = nil, options: ListOptions = ListOptions()) -> AsyncThrowingStream<[UInt8], any Error> {
        watchStream(resource, namespace: namespace, options: options, onOpen: nil) { $0 }
    }

    /// A watch whose lines `event` turns into elements on the transport thread; nil (a malformed event) ends it.
    private func watchStream<Element: Sendable>(_ resource: KubeResource, namespace: String?, options: ListOptions, onOpen: (@Sendable () -> Void)?,
                                                event: @escaping @Sendable ([UInt8]) -> Element?) -> AsyncThrowingStream<Element, any Error> {
        var q = options.query.filter { $0.0 != "limit" && $0.0 != "continue" }
        q.append(("watch", "true"))
        if options.allowWatchBookmarks { q.append(("allowWatchBookmarks", "true")) }
        if let t = options.timeoutSeconds { q.append(("timeoutSeconds", String(t))) }
        let path = resource.path(namespace: namespace)
        let (stream, continuation) = AsyncThrowingStream<Element, any Error>.makeStream()
        let task = Task {
            // The status once the answer's head arrived (0 before).
            let head = Mutex<Int>(0)
            do {
                let request = try await self.makeRequest("GET", path, query: q, body: nil, contentType: nil)
                let splitter = LineSplitter()
                let malformed = Mutex<Bool>(false)
                let observer = self.observer
                let server = config.server
                let response = try await transport.stream(request, onHead: { status, _ in
                    head.withLock { $0 = status }
                    if status == 200 {
                        observer?(APIAnswer(server: server, method: "WATCH", path: path, status: status))
                        onOpen?()
                    }
                }, onData: { bytes in
                    guard head.withLock({ $0 }) == 200 else { splitter.hold(bytes); return }
                    let lines = splitter.lines(bytes)
                    if splitter.overflowed && !malformed.withLock({ $0 }) {
                        malformed.withLock { $0 = true }
                        continuation.finish(throwing: KubeError(message: "watch GET \(path): an event longer than \(LineSplitter.maxLine >> 20) MiB"))
                    }
                    for line in lines where !malformed.withLock({ $0 }) {
                        guard let element = event(line) else {
                            // A lost event must not pass silently: end the stream now (which also cancels the
                            // transfer) so the consumer resumes or relists.
                            malformed.withLock { $0 = true }
                            continuation.finish(throwing: KubeError(message: "watch GET \(path): the server sent an event that is not a JSON watch event"))
                            continue
                        }
                        continuation.yield(element)
                    }
                })
                if response.status != 200 {
                    if response.status == 401 { self.tokens.invalidate() }
                    let error = Self.error(status: response.status, body: splitter.held, method: "GET", path: path)
                    observer?(APIAnswer(server: server, method: "WATCH", path: path, status: response.status,
                                        reason: Self.answerReason(response.status, splitter.held, method: "GET", path: path)))
                    continuation.finish(throwing: error)
                } else {
                    continuation.finish()
                }
            } catch let e as TransportError {
                // A watch that failed before any answer (a stream that breaks after its head is a dropped
                // connection, which the informer resumes: not a failure of the server).
                if !e.cancelled && head.withLock({ $0 }) == 0 {
                    self.observer?(APIAnswer(server: self.config.server, method: "WATCH", path: path, status: 0, reason: e.message, transportFailure: e.kind))
                }
                continuation.finish(throwing: KubeError(message: e.message))
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: requests and retries

    /// Sends one API request and decodes the JSON answer; non-2xx answers throw `KubeError` with the `Status`.
    public func call(_ method: String, _ path: String, query: [(String, String)] = [], body: [UInt8]? = nil, contentType: String? = nil) async throws(KubeError) -> JSONValue {
        let response = try await send(method, path, query: query, body: body, contentType: contentType)
        guard (200..<300).contains(response.status) else {
            throw Self.error(status: response.status, body: response.body, method: method, path: path)
        }
        do { return try JSONParser.parse(response.body) } catch {
            throw KubeError(message: "\(method) \(path): response is not JSON: \(error)", httpStatus: response.status)
        }
    }

    /// Sends one request with retries: 429 (after `Retry-After`) and connection failures that never reached the
    /// server are retried for every verb; 5xx and other connection failures only for idempotent reads.
    public func send(_ method: String, _ path: String, query: [(String, String)] = [], body: [UInt8]? = nil, contentType: String? = nil) async throws(KubeError) -> HTTPResponse {
        var delay = retry.initialDelay
        var attempt = 1
        var unauthorizedRetried = false
        while true {
            let request = try await makeRequest(method, path, query: query, body: body, contentType: contentType)
            var wait: Duration?
            do {
                let response = try await transport.send(request)
                if let observer {
                    observer(APIAnswer(server: config.server, method: method, path: path, status: response.status,
                                       reason: Self.answerReason(response.status, response.body, method: method, path: path)))
                }
                if response.status == 401, !unauthorizedRetried, case .exec = config.credentials {
                    tokens.invalidate()
                    unauthorizedRetried = true
                    continue
                }
                if attempt < retry.maxAttempts {
                    if response.status == 429 {
                        wait = Self.retryAfter(response) ?? delay
                    } else if response.status >= 500, Self.idempotent(method) {
                        wait = Self.retryAfter(response) ?? delay
                    }
                }
                if wait == nil { return response }
            } catch {
                let e = error as? TransportError ?? TransportError(message: "\(error)", notSent: false, cancelled: false)
                if !e.cancelled {
                    observer?(APIAnswer(server: config.server, method: method, path: path, status: 0, reason: e.message, transportFailure: e.kind))
                }
                // A timed-out request is repeated once at most: a server that did not answer twice is not answering.
                let timedOutTwice = e.kind == .timeout && attempt >= 2
                if e.cancelled || Task.isCancelled || attempt >= retry.maxAttempts || timedOutTwice || !(e.notSent || Self.idempotent(method)) {
                    throw KubeError(message: e.message)
                }
                wait = delay
            }
            retries.add(1, ordering: .relaxed)
            attempt += 1
            do { try await retry.sleep(wait ?? delay) } catch { throw KubeError(message: "\(method) \(path): cancelled") }
            delay = min(delay * 2, retry.maxDelay)
        }
    }

    static func idempotent(_ method: String) -> Bool { method == "GET" || method == "HEAD" }

    /// The largest answer read: above any real page of a list (500 objects of at most 1.5 MiB), so that a server
    /// sending without end fails the request instead of exhausting memory. Watches are bounded per event instead.
    static let maxResponseBytes = 1 << 30

    /// The reason an observer sees for a refused request: a 401's message (the API server says "Unauthorized"), a
    /// 403's `Status` reason only (its message may be an admission webhook's text quoting the object), else none.
    static func answerReason(_ status: Int, _ body: [UInt8], method: String, path: String) -> String? {
        switch status {
        case 401: error(status: status, body: body, method: method, path: path).message
        case 403: error(status: status, body: body, method: method, path: path).status?.reason ?? "Forbidden"
        default: nil
        }
    }

    static func retryAfter(_ response: HTTPResponse) -> Duration? {
        guard let v = response.header("retry-after"), let s = Int(v.trimmingCharacters(in: .whitespaces)), s >= 0 else { return nil }
        return .seconds(min(s, 60))
    }

    func makeRequest(_ method: String, _ path: String, query: [(String, String)], body: [UInt8]?, contentType: String?) async throws(KubeError) -> HTTPRequest {
        if let limiter {
            do { try await limiter.wait() } catch { throw KubeError(message: "\(method) \(path): cancelled") }
        }
        var url = config.server + path
        if !query.isEmpty { url += "?" + query.map { "\($0.0)=\(percentEncode($0.1))" }.joined(separator: "&") }
        var headers: [(name: String, value: String)] = [("Accept", "application/json"), ("User-Agent", "dynsecret/0.1")]
        if let contentType { headers.append(("Content-Type", contentType)) }
        if let token = try await tokens.token() { headers.append(("Authorization", "Bearer \(token)")) }
        var request = HTTPRequest(method: method, url: url, headers: headers, body: body, timeout: config.requestTimeout)
        request.maxResponseBytes = Self.maxResponseBytes
        return request
    }

    static func error(status: Int, body: [UInt8], method: String, path: String) -> KubeError {
        if let v = try? JSONParser.parse(body), let s = KubeStatus(json: v) {
            return KubeError(message: s.message.isEmpty ? "\(method) \(path): HTTP \(status) \(s.reason)" : s.message, status: s, httpStatus: status)
        }
        let text = String(decoding: body.prefix(200), as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        let reason: String = switch status {
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "NotFound"
        case 409: "Conflict"
        case 429: "TooManyRequests"
        default: ""
        }
        let message = "\(method) \(path): HTTP \(status)" + (reason.isEmpty ? "" : " \(reason)") + (text.isEmpty ? "" : ": \(text)")
        return KubeError(message: message, status: KubeStatus(code: status, reason: reason, message: message), httpStatus: status)
    }
}

/// One API request's outcome as the client saw it, for metrics and health checks. It never holds a header, a
/// token or a body: only the server, the verb and path, the status and, for a failure, the reason.
public struct APIAnswer: Sendable {
    /// The API server's URL.
    public var server: String
    /// The HTTP verb, or `WATCH` for a watch.
    public var method: String
    /// The request path, without its query.
    public var path: String
    /// The HTTP status; 0 when no answer came.
    public var status: Int
    /// Why it failed: a 401's message, a 403's `Status` reason, or the transport's error text.
    public var reason: String?
    /// What failed when no answer came.
    public var transportFailure: TransportError.Kind?

    public init(server: String, method: String, path: String, status: Int, reason: String? = nil, transportFailure: TransportError.Kind? = nil) {
        self.server = server
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.transportFailure = transportFailure
    }
}

/// Splits a byte stream into newline-terminated lines; keeps the partial tail between pieces.
/// `@unchecked Sendable`: used only from the single transport thread running one stream, and read by the
/// watch task only after that stream's transfer has completed.
final class LineSplitter: @unchecked Sendable {
    /// The longest line (one watch event: an object of at most a few MiB) kept while waiting for its end.
    static let maxLine = 16 << 20

    private var buffer: [UInt8] = []
    /// How much of `buffer` is known to hold no newline.
    private var scanned = 0
    private(set) var held: [UInt8] = []
    /// True once a line grew past `maxLine` (the stream is then not a watch stream).
    private(set) var overflowed = false

    func hold(_ bytes: [UInt8]) { if held.count < 1 << 20 { held += bytes } }

    func lines(_ bytes: [UInt8]) -> [[UInt8]] {
        buffer += bytes
        var out: [[UInt8]] = []
        var start = 0
        var i = scanned
        while i < buffer.count {
            if buffer[i] == 0x0A {
                if i > start { out.append(Array(buffer[start..<i])) }
                start = i + 1
            }
            i += 1
        }
        buffer.removeFirst(start)
        scanned = buffer.count
        if buffer.count > Self.maxLine {
            overflowed = true
            buffer = []
            scanned = 0
        }
        return out
    }
}
