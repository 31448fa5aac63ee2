internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix

/// An answer of the health or metrics endpoint.
public struct EndpointResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}

/// A small HTTP/1.1 server for `/healthz`, `/readyz` and `/metrics` (plain SwiftNIO; GET and HEAD only, bodies
/// ignored, one handler call per request).
public final class EndpointServer: Sendable {
    public typealias Handler = @Sendable (_ path: String) async -> EndpointResponse

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel

    /// Binds `host:port` (port 0 picks a free one).
    public init(host: String, port: Int, handler: @escaping Handler) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(EndpointHandler(handler: handler))
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

    /// Stops listening and closes the connections.
    public func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

final class EndpointHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let handler: EndpointServer.Handler
    private var head: HTTPRequestHead?

    init(handler: @escaping EndpointServer.Handler) { self.handler = handler }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            let path = String(h.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            let keepAlive = h.isKeepAlive
            let promise = context.eventLoop.makePromise(of: EndpointResponse.self)
            if h.method != .GET && h.method != .HEAD {
                promise.succeed(EndpointResponse(status: 405, body: Array("method not allowed\n".utf8)))
            } else {
                let handler = self.handler
                promise.completeWithTask { await handler(path) }
            }
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let isHead = h.method == .HEAD
            promise.futureResult.whenSuccess { r in
                let context = bound.value
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: r.contentType)
                headers.add(name: "Content-Length", value: String(r.body.count))
                if !keepAlive { headers.add(name: "Connection", value: "close") }
                let status = HTTPResponseStatus(statusCode: r.status)
                context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
                if !isHead {
                    var buffer = context.channel.allocator.buffer(capacity: r.body.count)
                    buffer.writeBytes(r.body)
                    context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))), promise: nil)
                }
                let done = context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
                if !keepAlive { done.whenComplete { _ in bound.value.close(promise: nil) } }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
