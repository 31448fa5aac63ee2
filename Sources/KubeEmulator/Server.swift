internal import DynSecretCore
internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
internal import NIOSSL
internal import Synchronization

// The HTTP side of the emulator: plain SwiftNIO (HTTP/1.1, optional TLS through swift-nio-ssl).
// Plain NIO rather than Hummingbird: the emulator needs long-lived chunked watch streams written from the
// store's notification path, per-connection counting and connection drops for fault injection, which are
// direct in a channel handler, and it keeps the build to swift-nio + swift-nio-ssl.

final class WatchCounter: Sendable {
    let value = Mutex(0)
    func next() -> Int { value.withLock { $0 += 1; return $0 } }
}

/// A watch's frames not yet written; the event loop drains them in order.
final class PendingFrames: Sendable {
    private let frames = Mutex<(queued: [WatchFrame], scheduled: Bool)>(([], false))

    /// Queues `frame`; true when the caller must schedule the drain (none is scheduled).
    func append(_ frame: WatchFrame) -> Bool {
        frames.withLock { f in
            f.queued.append(frame)
            if f.scheduled { return false }
            f.scheduled = true
            return true
        }
    }

    /// The queued frames, or nil (and the drain ends) when there are none.
    func takeAll() -> [WatchFrame]? {
        frames.withLock { f in
            if f.queued.isEmpty {
                f.scheduled = false
                return nil
            }
            defer { f.queued.removeAll(keepingCapacity: true) }
            return f.queued
        }
    }
}

final class HTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let router: Router
    let bookmarkInterval: TimeAmount
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var watchID: Int?
    private var watching = false

    init(router: Router, bookmarkInterval: TimeAmount) {
        self.router = router
        self.bookmarkInterval = bookmarkInterval
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
        case .body(var b):
            if let bytes = b.readBytes(length: b.readableBytes) { body += bytes }
        case .end:
            guard let h = head else { return }
            head = nil
            let latency = router.faults.withLock { $0.latencyMilliseconds }
            if latency > 0 {
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let b = body
                context.eventLoop.scheduleTask(in: .milliseconds(Int64(latency))) {
                    bound.value.0.handle(context: bound.value.1, head: h, body: b)
                }
            } else {
                handle(context: context, head: h, body: body)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let id = watchID { router.store.unwatch(id) }
        watchID = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func handle(context: ChannelHandlerContext, head h: HTTPRequestHead, body: [UInt8]) {
        let dropRate = router.faults.withLock { $0.dropConnectionRate }
        if dropRate > 0, !h.uri.hasPrefix("/emulator"), Double.random(in: 0..<1) < dropRate {
            router.count("dropped-connections")
            context.close(promise: nil)
            return
        }
        let (path, query) = Self.splitURI(h.uri)
        let request = APIRequest(method: h.method.rawValue, path: path, query: query, headers: h.headers.map { ($0.name, $0.value) }, body: body)
        switch router.route(request) {
        case .response(let r):
            write(r, context: context, head: h)
        case .deferred(let run):
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let promise = context.eventLoop.makePromise(of: APIResponse.self)
            promise.completeWithTask { await run() }
            promise.futureResult.whenSuccess { r in bound.value.0.write(r, context: bound.value.1, head: h) }
        case .watch(let start, let bookmarks, let timeout):
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Transfer-Encoding", value: "chunked")
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: .ok, headers: headers))), promise: nil)
            watching = true
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            let dropAfter = router.faults.withLock { $0.dropWatchAfterEvents }
            let sent = WatchCounter()
            let router = self.router
            // Frames queue up and are written by one task on the event loop, flushed once when the queue is empty
            // (as the API server flushes a watch only when no further event is waiting): a burst of writes reaches
            // the watcher in a few large chunks, not one syscall per event.
            let pending = PendingFrames()
            let id = start { frame in
                guard pending.append(frame) else { return }
                loop.execute {
                    let (handler, ctx) = bound.value
                    while let frames = pending.takeAll() {
                        for frame in frames {
                            switch frame {
                            case .event(let type, let object, let shared):
                                let line = shared?.line(type: type, object: object)
                                    ?? GoJSONWriter.compact(.object(JSONObject([("type", .string(type)), ("object", object)]))) + [0x0A]
                                ctx.write(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: line)))), promise: nil)
                                if dropAfter > 0, type != "BOOKMARK", sent.next() >= dropAfter {
                                    router.count("dropped-watches")
                                    ctx.flush()
                                    ctx.close(promise: nil)
                                }
                            case .drop:
                                ctx.close(promise: nil)
                            case .close:
                                ctx.writeAndFlush(handler.wrapOutboundOut(.end(nil))).whenComplete { [channel = ctx.channel] _ in channel.close(promise: nil) }
                            }
                        }
                        ctx.flush()
                    }
                }
            }
            watchID = id
            if let id {
                if bookmarks {
                    let store = router.store
                    loop.scheduleRepeatedTask(initialDelay: bookmarkInterval, delay: bookmarkInterval) { task in
                        if !bound.value.0.watching { task.cancel(); return }
                        store.bookmark(id)
                    }
                }
                if let timeout, timeout > 0 {
                    loop.scheduleTask(in: .seconds(Int64(timeout))) {
                        let (handler, ctx) = bound.value
                        guard handler.watching else { return }
                        ctx.writeAndFlush(handler.wrapOutboundOut(.end(nil))).whenComplete { [channel = ctx.channel] _ in channel.close(promise: nil) }
                    }
                }
            }
        }
    }

    private func write(_ r: APIResponse, context: ChannelHandlerContext, head h: HTTPRequestHead) {
        var headers = HTTPHeaders()
        for (n, v) in r.headers { headers.add(name: n, value: v) }
        headers.add(name: "Content-Length", value: String(r.body.count))
        if !h.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: HTTPResponseStatus(statusCode: r.status), headers: headers))), promise: nil)
        if !r.body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: r.body)))), promise: nil) }
        let keepAlive = h.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    static func splitURI(_ uriIn: String) -> (String, [String: String]) {
        var uri = Substring(uriIn)
        // Absolute form (`GET http://host/path`), as sent through an HTTP proxy.
        if uri.hasPrefix("http://") || uri.hasPrefix("https://") {
            let afterScheme = uri[uri.index(uri.firstIndex(of: ":")!, offsetBy: 3)...]
            uri = afterScheme.firstIndex(of: "/").map { afterScheme[$0...] } ?? "/"
        }
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts.first ?? "")
        var query: [String: String] = [:]
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let k = Self.decode(String(kv[0]))
                query[k] = kv.count > 1 ? Self.decode(String(kv[1])) : ""
            }
        }
        return (path, query)
    }

    static func decode(_ s: String) -> String {
        var bytes: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "+") { bytes.append(0x20) } else if c == UInt8(ascii: "%"), it.count >= 2,
                let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(v)
                it = it.dropFirst(2)
            } else { bytes.append(c) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Listens and wires connections to the router.
final class HTTPServer: Sendable {
    let group: MultiThreadedEventLoopGroup
    let channel: any Channel

    init(host: String, port: Int, router: Router, tls: NIOSSLContext?, bookmarkInterval: TimeAmount) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        self.group = group
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                router.count("connections")
                return channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(router: router, bookmarkInterval: bookmarkInterval))
                }
            }
        do {
            channel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    var port: Int { channel.localAddress?.port ?? 0 }

    func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}
