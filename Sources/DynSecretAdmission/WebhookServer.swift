public import DynSecretCore
public import Logging
internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
internal import NIOSSL

/// The webhook's HTTPS server (SwiftNIO, swift-nio-ssl, HTTP/1.1): `POST /validate` (AdmissionReview), `GET /healthz`,
/// `/readyz` (200 once the caches have synced) and `/metrics`.
///
/// Reviews are decided on the connection's event loop: the decision is pure and reads only in-memory caches.
public final class WebhookServer: Sendable {
    /// Largest request body accepted: an AdmissionReview carries the object and the old one (3 MiB each at most).
    public static let maxBodyBytes = 7 * 1024 * 1024

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel

    /// Binds `host:port` (port 0 picks a free one) and serves with the current certificate of `certificate`.
    public init(host: String, port: Int, certificate: ServingCertificate, reviewer: AdmissionReviewer, state: any AdmissionState,
                metrics: WebhookMetrics, logger: Logger, threads: Int? = nil) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads ?? System.coreCount))
        self.group = group
        let service = ReviewService(reviewer: reviewer, state: state, metrics: metrics, logger: logger)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                // The context current when the connection is accepted; a later reload does not touch this connection.
                let tls = certificate.context
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(WebhookHandler(service: service))
                }
            }
        do {
            channel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// The bound port.
    public var port: Int { channel.localAddress?.port ?? 0 }

    /// Stops listening, then closes the connections once their answers are written.
    public func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

/// Routes one request to an answer.
struct ReviewService: Sendable {
    let reviewer: AdmissionReviewer
    let state: any AdmissionState
    let metrics: WebhookMetrics
    let logger: Logger

    struct Answer {
        var status: HTTPResponseStatus
        var contentType: String
        var body: [UInt8]
    }

    func answer(method: HTTPMethod, path: String, body: [UInt8]) -> Answer {
        switch (method, path) {
        case (.POST, "/validate"):
            return review(body)
        case (.GET, "/healthz"), (.HEAD, "/healthz"):
            return Answer(status: .ok, contentType: "text/plain; charset=utf-8", body: Array("ok\n".utf8))
        case (.GET, "/readyz"), (.HEAD, "/readyz"):
            let synced = state.hasSynced
            metrics.setSynced(synced)
            return synced ? Answer(status: .ok, contentType: "text/plain; charset=utf-8", body: Array("ok\n".utf8))
                : Answer(status: .serviceUnavailable, contentType: "text/plain; charset=utf-8", body: Array("caches not synced\n".utf8))
        case (.GET, "/metrics"):
            metrics.setSynced(state.hasSynced)
            return Answer(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.exposition())
        case (_, "/validate"), (_, "/healthz"), (_, "/readyz"), (_, "/metrics"):
            return Answer(status: .methodNotAllowed, contentType: "text/plain; charset=utf-8", body: Array("method not allowed\n".utf8))
        default:
            return Answer(status: .notFound, contentType: "text/plain; charset=utf-8", body: Array("not found\n".utf8))
        }
    }

    private func review(_ body: [UInt8]) -> Answer {
        let start = ContinuousClock.now
        let request: AdmissionRequest
        do {
            request = try AdmissionRequest.decode(body)
        } catch {
            metrics.reviewed(kind: "", result: "invalid", duration: ContinuousClock.now - start)
            logger.info("admission.invalid-review", metadata: ["error": "\(error.message)"])
            return Answer(status: .badRequest, contentType: "text/plain; charset=utf-8", body: Array("invalid AdmissionReview: \(error.message)\n".utf8))
        }
        let outcome = reviewer.decide(request, state: state)
        let r = outcome.response
        let result = outcome.skipped != nil ? "skipped" : !r.allowed ? "denied" : r.warnings.isEmpty ? "allowed" : "warned"
        metrics.reviewed(kind: request.kind, result: result, duration: ContinuousClock.now - start)
        if outcome.skipped == nil {
            // Rule ids, kinds and names only: finding messages stay in the response.
            logger.debug("admission.reviewed", metadata: [
                "request.uid": "\(request.uid)", "object.kind": "\(request.kind)", "object.namespace": "\(request.namespace)",
                "object.name": "\(request.name)", "result": "\(result)", "mode": "\(outcome.mode.rawValue)",
                "rules": "\(Set(outcome.findings.map(\.rule)).sorted().joined(separator: ","))",
            ])
        }
        return Answer(status: .ok, contentType: "application/json", body: r.body)
    }
}

final class WebhookHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let service: ReviewService
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(service: ReviewService) { self.service = service }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
            tooLarge = false
        case .body(var b):
            if body.count + b.readableBytes > WebhookServer.maxBodyBytes {
                tooLarge = true
                body = []
            } else if !tooLarge, let bytes = b.readBytes(length: b.readableBytes) {
                body += bytes
            }
        case .end:
            guard let h = head else { return }
            head = nil
            let path = String(h.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            let answer = tooLarge
                ? ReviewService.Answer(status: .payloadTooLarge, contentType: "text/plain; charset=utf-8", body: Array("request body too large\n".utf8))
                : service.answer(method: h.method, path: path, body: body)
            body = []
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: answer.contentType)
            headers.add(name: "Content-Length", value: String(answer.body.count))
            let keepAlive = h.isKeepAlive && !tooLarge
            if !keepAlive {
                headers.add(name: "Connection", value: "close")
            } else if h.version.major == 1 && h.version.minor == 0 {
                // HTTP/1.0 keeps a connection only when the answer says so.
                headers.add(name: "Connection", value: "keep-alive")
            }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: answer.status, headers: headers))), promise: nil)
            if h.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: answer.body)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in
                if !keepAlive { channel.close(promise: nil) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
