internal import DynSecretCore
internal import Foundation
internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
internal import NIOSSL
internal import Synchronization

/// What a write is, as validating admission webhooks see it.
struct AdmissionAttributes: Sendable {
    var kind: Kind
    var operation: String
    var namespace: String?
    var name: String
    var object: JSONObject
    var oldObject: JSONObject?
    var dryRun: Bool
    var user: String
}

/// The outcome of calling the matching webhooks.
struct AdmissionVerdict: Sendable {
    /// `Warning` headers (`299 - "…"`) from every webhook called.
    var warnings: [(String, String)] = []
    /// Set when a webhook denied the request, or could not be called under `failurePolicy: Fail`.
    var error: APIError?
}

/// Validating admission as the API server does it: the stored `ValidatingWebhookConfiguration`s are matched against
/// each create and update (rules, scope, `namespaceSelector`, `objectSelector`; `matchConditions` are not evaluated)
/// and each matching webhook is called over HTTPS with its `caBundle`, within `timeoutSeconds`, one after another.
final class AdmissionWebhooks: Sendable {
    struct Hook: Sendable {
        var name: String
        var url: String
        var caBundle: [UInt8]
        var timeoutSeconds: Int
        var failClosed: Bool
    }

    let store: Store
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let calls = Mutex(0)

    init(store: Store) { self.store = store }

    /// The webhooks that match `a`, in configuration name order, then list order.
    func matching(_ a: AdmissionAttributes, objectSelectors: Bool = true) -> [Hook] {
        guard let page = try? store.list(.validatingWebhookConfiguration, namespace: nil, labels: nil, fields: nil, limit: 0, continueToken: nil),
              !page.items.isEmpty else { return [] }
        var nsLabels: [String: String]?
        if a.kind.namespaced, let ns = a.namespace { nsLabels = (try? store.get(.namespace, namespace: nil, name: ns)).map(Self.labels) ?? [:] }
        var out: [Hook] = []
        for config in page.items {
            for case .object(let w) in config["webhooks"]?.arrayValue ?? [] {
                guard let name = w["name"]?.stringValue, Self.rulesMatch(w, a) else { continue }
                if let nsLabels, let sel = w["namespaceSelector"]?.objectValue, !Self.selector(sel).matches(nsLabels) { continue }
                if a.kind.kind == "Namespace", let sel = w["namespaceSelector"]?.objectValue, !Self.selector(sel).matches(Self.labels(a.object)) { continue }
                if objectSelectors, let sel = w["objectSelector"]?.objectValue {
                    let s = Self.selector(sel)
                    if !s.matches(Self.labels(a.object)) && !(a.oldObject.map { s.matches(Self.labels($0)) } ?? false) { continue }
                }
                let client = w["clientConfig"]?.objectValue ?? JSONObject()
                var url = client["url"]?.stringValue ?? ""
                if url.isEmpty, let svc = client["service"]?.objectValue {
                    // No cluster DNS here: a service reference is only meaningful in a real cluster.
                    url = "https://\(svc["name"]?.stringValue ?? "").\(svc["namespace"]?.stringValue ?? "").svc:\(svc["port"].flatMap { if case .number(let n) = $0 { n } else { nil } } ?? "443")\(svc["path"]?.stringValue ?? "")"
                }
                let ca = client["caBundle"]?.stringValue.flatMap { Base64.decode($0) } ?? []
                let timeout = w["timeoutSeconds"].flatMap { if case .number(let n) = $0 { Int(n) } else { nil } } ?? 10
                out.append(Hook(name: name, url: url, caBundle: ca, timeoutSeconds: min(max(timeout, 1), 30),
                                failClosed: (w["failurePolicy"]?.stringValue ?? "Fail") != "Ignore"))
            }
        }
        return out
    }

    static func labels(_ o: JSONObject) -> [String: String] {
        var out: [String: String] = [:]
        for m in o["metadata"]?["labels"]?.objectValue?.members ?? [] { out[m.key] = m.value.stringValue ?? "" }
        return out
    }

    static func selector(_ o: JSONObject) -> LabelSelector {
        var s = LabelSelector()
        for m in o["matchLabels"]?.objectValue?.members ?? [] { s.matchLabels[m.key] = m.value.stringValue ?? "" }
        for case .object(let e) in o["matchExpressions"]?.arrayValue ?? [] {
            s.matchExpressions.append(LabelSelector.Requirement(key: e["key"]?.stringValue ?? "", op: e["operator"]?.stringValue ?? "",
                                                                values: (e["values"]?.arrayValue ?? []).compactMap(\.stringValue)))
        }
        return s
    }

    static func rulesMatch(_ w: JSONObject, _ a: AdmissionAttributes) -> Bool {
        func has(_ list: JSONValue?, _ value: String) -> Bool {
            (list?.arrayValue ?? []).contains { $0.stringValue == "*" || $0.stringValue == value }
        }
        for case .object(let r) in w["rules"]?.arrayValue ?? [] {
            let scope = r["scope"]?.stringValue ?? "*"
            guard scope == "*" || (scope == "Namespaced") == a.kind.namespaced else { continue }
            if has(r["apiGroups"], a.kind.group), has(r["apiVersions"], a.kind.version), has(r["operations"], a.operation),
               (r["resources"]?.arrayValue ?? []).contains(where: { $0.stringValue == "*" || $0.stringValue == a.kind.plural || $0.stringValue == "*/*" }) {
                return true
            }
        }
        return false
    }

    /// Calls each hook with an AdmissionReview of `a`.
    func admit(_ a: AdmissionAttributes, _ hooks: [Hook]) async -> AdmissionVerdict {
        var verdict = AdmissionVerdict()
        for hook in hooks {
            calls.withLock { $0 += 1 }
            let uid = UUID().uuidString.lowercased()
            let body = GoJSONWriter.compact(Self.review(a, uid: uid))
            let answer: JSONValue
            do {
                answer = try await post(hook, body)
            } catch {
                if hook.failClosed {
                    verdict.error = APIError(code: 500, reason: "InternalError",
                                             message: "Internal error occurred: failed calling webhook \(KubeNames.goQuote(hook.name)): failed to call webhook: Post \(KubeNames.goQuote(hook.url + "?timeout=\(hook.timeoutSeconds)s")): \(error)")
                    return verdict
                }
                continue
            }
            let response = answer["response"]?.objectValue ?? JSONObject()
            for case .string(let w) in response["warnings"]?.arrayValue ?? [] {
                verdict.warnings.append(("Warning", "299 - \(KubeNames.goQuote(w))"))
            }
            guard response["uid"]?.stringValue == uid else {
                if hook.failClosed {
                    verdict.error = APIError(code: 500, reason: "InternalError", message: "Internal error occurred: failed calling webhook \(KubeNames.goQuote(hook.name)): expected response.uid=\(KubeNames.goQuote(uid)), got \(KubeNames.goQuote(response["uid"]?.stringValue ?? ""))")
                    return verdict
                }
                continue
            }
            if response["allowed"] != .bool(true) {
                // As the API server's ToStatusErr: a code below 400 becomes 400; the message is prefixed.
                let status = response["status"]?.objectValue ?? JSONObject()
                var code = status["code"].flatMap { if case .number(let n) = $0 { Int(n) } else { nil } } ?? 0
                if code < 400 { code = 400 }
                let denied = "admission webhook \(KubeNames.goQuote(hook.name)) denied the request"
                let message = status["message"]?.stringValue ?? ""
                let reason = status["reason"]?.stringValue ?? ""
                let text = !message.isEmpty ? "\(denied): \(message)" : !reason.isEmpty ? "\(denied): \(reason)" : "\(denied) without explanation"
                verdict.error = APIError(code: code, reason: reason, message: text, details: status["details"]?.objectValue)
                return verdict
            }
        }
        return verdict
    }

    static func review(_ a: AdmissionAttributes, uid: String) -> JSONValue {
        var request = JSONObject([
            ("uid", .string(uid)),
            ("kind", .object(JSONObject([("group", .string(a.kind.group)), ("version", .string(a.kind.version)), ("kind", .string(a.kind.kind))]))),
            ("resource", .object(JSONObject([("group", .string(a.kind.group)), ("version", .string(a.kind.version)), ("resource", .string(a.kind.plural))]))),
            ("requestKind", .object(JSONObject([("group", .string(a.kind.group)), ("version", .string(a.kind.version)), ("kind", .string(a.kind.kind))]))),
            ("requestResource", .object(JSONObject([("group", .string(a.kind.group)), ("version", .string(a.kind.version)), ("resource", .string(a.kind.plural))]))),
            ("name", .string(a.name)),
        ])
        if let ns = a.namespace { request["namespace"] = .string(ns) }
        request["operation"] = .string(a.operation)
        request["userInfo"] = .object(JSONObject([("username", .string(a.user)), ("groups", .array([.string("system:authenticated")]))]))
        request["object"] = .object(Store.withType(a.object, a.kind))
        request["oldObject"] = a.oldObject.map { .object(Store.withType($0, a.kind)) } ?? .null
        request["dryRun"] = .bool(a.dryRun)
        return .object(JSONObject([("kind", .string("AdmissionReview")), ("apiVersion", .string("admission.k8s.io/v1")), ("request", .object(request))]))
    }

    struct CallError: Error, CustomStringConvertible {
        var description: String
    }

    /// One HTTPS POST on a fresh connection, within the hook's timeout.
    func post(_ hook: Hook, _ body: [UInt8]) async throws -> JSONValue {
        guard let comps = URLComponents(string: hook.url), comps.scheme == "https", let host = comps.host else {
            throw CallError(description: "webhook url must be https://HOST[:PORT]/PATH")
        }
        let port = comps.port ?? 443
        let path = (comps.path.isEmpty ? "/" : comps.path) + "?timeout=\(hook.timeoutSeconds)s"
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(hook.caBundle))
        tls.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: tls)
        let isIP = host.allSatisfy { $0.isNumber || $0 == "." || $0 == ":" }
        let loop = group.next()
        let promise = loop.makePromise(of: (HTTPResponseStatus, [UInt8]).self)
        let timeout = loop.scheduleTask(in: .seconds(Int64(hook.timeoutSeconds))) {
            promise.fail(CallError(description: "context deadline exceeded"))
        }
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(.seconds(Int64(hook.timeoutSeconds)))
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: isIP ? nil : host))
                        try ch.pipeline.syncOperations.addHTTPClientHandlers()
                        try ch.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            timeout.cancel()
            promise.fail(error)
            throw CallError(description: "dial tcp \(host):\(port): \(error)")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(host):\(port)")
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Accept", value: "application/json, */*")
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "User-Agent", value: "kube-emulator-admission")
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        defer { channel.close(promise: nil) }
        let (status, data): (HTTPResponseStatus, [UInt8])
        do {
            (status, data) = try await promise.futureResult.get()
        } catch {
            timeout.cancel()
            throw error
        }
        timeout.cancel()
        guard status == .ok else {
            throw CallError(description: "the server responded with the status code \(status.code): \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        do {
            return try JSONParser.parse(data)
        } catch {
            throw CallError(description: "the response is not JSON: \(error)")
        }
    }
}

/// Collects one HTTP response.
final class ResponseCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    let promise: EventLoopPromise<(HTTPResponseStatus, [UInt8])>
    private var status: HTTPResponseStatus = .ok
    private var body: [UInt8] = []

    init(promise: EventLoopPromise<(HTTPResponseStatus, [UInt8])>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): status = h.status
        case .body(var b): body += b.readBytes(length: b.readableBytes) ?? []
        case .end: promise.succeed((status, body))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(AdmissionWebhooks.CallError(description: "EOF"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
