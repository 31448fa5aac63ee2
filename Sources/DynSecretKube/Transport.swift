internal import CDynSecretCurl
internal import Foundation
internal import Synchronization

// The libcurl transport: the only code in dynsecret (with CurlLibrary in Curl.swift) that touches libcurl.
//
// Threading: every transfer of a transport, ordinary requests and streams (watches) alike, runs on one
// dedicated thread that drives a libcurl multi handle (`TransferLoop`); nothing blocks Swift's cooperative
// pool. The multi handle owns one connection cache for all transfers (keep-alive, and HTTP/2 multiplexing when
// the server offers it). Callers hand a transfer to the loop and wake it; the loop resumes their continuations.

/// One HTTP request as the transport sends it. Its description shows neither headers nor body (they carry
/// credentials and secret values).
public struct HTTPRequest: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    public var method: String
    /// The absolute URL.
    public var url: String
    /// Request headers, in order.
    public var headers: [(name: String, value: String)]
    /// The request body, if any.
    public var body: [UInt8]?
    /// Whole-request timeout (ignored for streams, which end by cancellation or by the server).
    public var timeout: Duration
    /// The largest response body accepted (nil: no limit); a larger one fails the request with `.tooLarge`.
    /// Not applied to streams.
    public var maxResponseBytes: Int?

    public init(method: String, url: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil, timeout: Duration = .seconds(30)) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }

    public var description: String { "\(method) \(Transfer.redactedURL(url))" }
    public var debugDescription: String { description }
}

/// A complete HTTP response.
public struct HTTPResponse: Sendable {
    /// The status code.
    public var status: Int
    /// Response headers, names lowercased.
    public var headers: [(name: String, value: String)]
    /// The (decompressed) body.
    public var body: [UInt8]
    /// The HTTP version used: `1.1` or `2`.
    public var httpVersion: String = "1.1"

    /// The first header named `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.name == n }?.value
    }
}

/// TLS and proxy settings for every request of a transport.
public struct TransportSettings: Sendable {
    /// PEM bytes of the CA bundle that verifies the server; nil uses the system bundle.
    public var caPEM: [UInt8]?
    /// PEM CA certificates trusted in addition to the system bundle (ignored when `caPEM` is set).
    public var extraCAPEM: [UInt8]?
    /// Skip server certificate verification (kubeconfig `insecure-skip-tls-verify`).
    public var insecureSkipVerify: Bool = false
    /// PEM client certificate and key for mutual TLS.
    public var clientCertificatePEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?
    /// Proxy URL (kubeconfig `proxy-url`, or `HTTPS_PROXY`/`HTTP_PROXY`); empty means no proxy; nil lets libcurl
    /// read the proxy variables of the process environment.
    public var proxyURL: String?
    /// Hosts that bypass the proxy (`NO_PROXY` syntax).
    public var noProxy: String?
    /// Connection timeout (TCP and the TLS handshake).
    public var connectTimeout: Duration = .seconds(10)
    /// An ordinary request that receives (or sends) nothing for this long fails as timed out: a server that accepts
    /// the connection and never answers is given up on here rather than at the whole-request timeout. Streams have
    /// their own, longer stall limit (two minutes without even a bookmark).
    public var stallTimeout: Duration = .seconds(15)
    /// Offer HTTP/2 over TLS.
    public var http2: Bool = true

    public init() {}
}

/// A transport failure: the connection or the transfer failed before a complete response arrived.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    /// curl's error text (from its error buffer when it filled one).
    public var message: String
    /// True when the request certainly never reached the server (connect or DNS failure), so repeating it is safe.
    public var notSent: Bool
    /// True when the transfer was cancelled.
    public var cancelled: Bool
    /// What failed, for callers that report connection and TLS problems differently.
    public var kind: Kind = .other
    public var description: String { message }

    /// The class of a transport failure.
    public enum Kind: Sendable, Equatable {
        /// DNS resolution or the TCP connection failed.
        case connect
        /// The connection or the whole request timed out.
        case timeout
        /// The TLS handshake failed (for example, the server does not speak TLS).
        case tlsHandshake
        /// The server's certificate was not trusted or did not match the host.
        case tlsCertificate
        /// The response body exceeded the request's `maxResponseBytes`.
        case tooLarge
        case other
    }
}

/// Counters a transport keeps; read them for benchmarks and metrics.
public struct TransportStatistics: Sendable {
    /// Requests completed (any status).
    public var requests: Int
    /// New connections opened (TCP + TLS handshakes).
    public var connectionsOpened: Int
}

/// HTTP over libcurl: connection reuse, HTTP/2 when offered, gzip, timeouts, cancellation, streaming.
public final class CurlTransport: Sendable {
    /// The settings every request uses.
    public let settings: TransportSettings
    private let loop: TransferLoop
    private let stats = Mutex<TransportStatistics>(TransportStatistics(requests: 0, connectionsOpened: 0))
    /// The CA blob every transfer hands libcurl: `caPEM`, or the system bundle plus `extraCAPEM` (built once).
    private let caBlob: [UInt8]?

    /// A transport running at most `maxConcurrentRequests` ordinary requests at once.
    public init(settings: TransportSettings = TransportSettings(), maxConcurrentRequests: Int = 8) {
        CurlGlobal.initialize()
        self.settings = settings
        self.loop = TransferLoop(limit: max(1, maxConcurrentRequests), http2: settings.http2)
        // A blob replaces libcurl's CA file, so extra CAs travel with the system bundle.
        caBlob = settings.caPEM ?? settings.extraCAPEM.map { CurlGlobal.systemCABundle + Array("\n".utf8) + $0 }
    }

    deinit { loop.shutdown() }

    /// Counters so far.
    public var statistics: TransportStatistics { stats.withLock { $0 } }

    /// Sends `request` and returns the complete response. Throws `TransportError` on connection failure,
    /// timeout or cancellation; HTTP error statuses are returned, not thrown.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let transfer = Transfer(request: request, settings: settings, caBlob: caBlob, onData: nil)
        let result: Result<HTTPResponse, TransportError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<Result<HTTPResponse, TransportError>, Never>) in
                transfer.completion = { cont.resume(returning: $0) }
                loop.submit(transfer)
            }
        } onCancel: {
            transfer.cancel()
            loop.wake()
        }
        record(transfer)
        return try result.get()
    }

    /// Sends `request` and calls `onData` with each piece of the body as it arrives (on a transport thread),
    /// returning the status and headers once the stream ends. Cancelling the task ends the stream.
    /// `onHead` is called once with the status and headers before any body piece.
    public func stream(
        _ request: HTTPRequest,
        onHead: @escaping @Sendable (Int, [(name: String, value: String)]) -> Void,
        onData: @escaping @Sendable ([UInt8]) -> Void
    ) async throws -> HTTPResponse {
        let transfer = Transfer(request: request, settings: settings, caBlob: caBlob, onData: onData)
        transfer.onHead = onHead
        let result: Result<HTTPResponse, TransportError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<Result<HTTPResponse, TransportError>, Never>) in
                transfer.completion = { cont.resume(returning: $0) }
                loop.submit(transfer)
            }
        } onCancel: {
            transfer.cancel()
            loop.wake()
        }
        record(transfer)
        return try result.get()
    }

    private func record(_ transfer: Transfer) {
        let opened = transfer.connectionsOpened
        stats.withLock {
            $0.requests += 1
            $0.connectionsOpened += opened
        }
    }
}

enum CurlGlobal {
    /// curl_global_init's result, run once; transfers refuse to start when it failed.
    static let status: CURLcode = cdynsecret_curl_global_init()

    static func initialize() { _ = status }

    /// The bytes of libcurl's default CA bundle file (empty when it has none or it cannot be read).
    static let systemCABundle: [UInt8] = {
        guard status == CURLE_OK, let h = curl_easy_init() else { return [] }
        defer { curl_easy_cleanup(h) }
        var path: UnsafeMutablePointer<CChar>?
        guard cdynsecret_curl_getinfo_string(h, CURLINFO_CAINFO, &path) == CURLE_OK, let path else { return [] }
        return (try? Array(Data(contentsOf: URL(fileURLWithPath: String(cString: path))))) ?? []
    }()

    /// The transport failure class of a libcurl result code.
    static func kind(of code: CURLcode) -> TransportError.Kind {
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: .connect
        case CURLE_OPERATION_TIMEDOUT: .timeout
        case CURLE_SSL_CONNECT_ERROR: .tlsHandshake
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR,
             CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CRL_BADFILE: .tlsCertificate
        default: .other
        }
    }
}

/// One libcurl easy handle; owned by exactly one thread at a time (a pool worker or a stream thread).
final class EasyHandle {
    let handle: UnsafeMutableRawPointer?
    /// Heap buffer for curl's error text; it must outlive every transfer on this handle.
    let errorBuffer: UnsafeMutablePointer<CChar>

    init() {
        handle = curl_easy_init()
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        if let handle { curl_easy_cleanup(handle) }
        errorBuffer.deallocate()
    }
}

/// One request in flight, shared between the caller's task and the thread running it.
///
/// `@unchecked Sendable`: the mutable transfer state (`body`, `headers`, `status`, `connectionsOpened`)
/// is written only by the transport's loop thread, and read by the caller only after
/// `completion` has been called (the continuation's resume orders those accesses). `completion` and
/// `onHead` are set before the transfer is handed to a thread. Cancellation goes through an atomic.
final class Transfer: @unchecked Sendable {
    let request: HTTPRequest
    let settings: TransportSettings
    let caBlob: [UInt8]?
    let onData: (@Sendable ([UInt8]) -> Void)?
    var onHead: (@Sendable (Int, [(name: String, value: String)]) -> Void)?
    var completion: (@Sendable (Result<HTTPResponse, TransportError>) -> Void)?
    private let cancelled = Atomic<Bool>(false)

    var status = 0
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    var headDelivered = false
    var connectionsOpened = 0
    var exceededLimit = false
    /// The request's header list; libcurl reads it until the transfer ends.
    private var headerList: UnsafeMutablePointer<curl_slist>?

    init(request: HTTPRequest, settings: TransportSettings, caBlob: [UInt8]?, onData: (@Sendable ([UInt8]) -> Void)?) {
        self.request = request
        self.settings = settings
        self.caBlob = caBlob
        self.onData = onData
    }

    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
    func cancel() { cancelled.store(true, ordering: .relaxed) }

    func finish(_ result: Result<HTTPResponse, TransportError>) {
        let c = completion
        completion = nil
        c?(result)
    }

    /// Whether the transfer is a stream (no concurrency limit, no whole-request timeout).
    var isStream: Bool { onData != nil }

    /// Sets `easy` up for this transfer; false (and `completion` called) when it cannot start.
    func begin(on easy: EasyHandle) -> Bool {
        if isCancelled {
            finish(.failure(TransportError(message: "request cancelled", notSent: true, cancelled: true)))
            return false
        }
        guard CurlGlobal.status == CURLE_OK else {
            finish(.failure(TransportError(message: "curl_global_init failed: \(String(cString: curl_easy_strerror(CurlGlobal.status)))", notSent: true, cancelled: false)))
            return false
        }
        guard let h = easy.handle else {
            finish(.failure(TransportError(message: "curl_easy_init failed", notSent: true, cancelled: false)))
            return false
        }
        curl_easy_reset(h)
        easy.errorBuffer[0] = 0
        do {
            try configure(h, easy: easy, headerList: &headerList)
        } catch {
            releaseHeaders()
            finish(.failure(error))
            return false
        }
        return true
    }

    /// Ends the transfer that ran on `easy` with libcurl's result `code` and calls `completion`.
    func complete(_ code: CURLcode, on easy: EasyHandle) {
        releaseHeaders()
        guard let h = easy.handle else {
            finish(.failure(TransportError(message: "curl_easy_init failed", notSent: true, cancelled: false)))
            return
        }
        var connects = 0
        if cdynsecret_curl_getinfo_long(h, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK { connectionsOpened = connects }

        if code == CURLE_WRITE_ERROR, exceededLimit {
            finish(.failure(TransportError(
                message: "\(request.method) \(Self.redactedURL(request.url)): response body larger than \(request.maxResponseBytes ?? 0) bytes",
                notSent: false, cancelled: false, kind: .tooLarge)))
            return
        }
        if code != CURLE_OK {
            let cancelledNow = (code == CURLE_ABORTED_BY_CALLBACK || code == Self.cancelledCode) && isCancelled
            let text = easy.errorBuffer[0] != 0 ? String(cString: easy.errorBuffer) : String(cString: curl_easy_strerror(code))
            let notSent = [CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY].contains(code)
            // A stream that already delivered its head ended by a dropped connection or cancellation:
            // report the partial response to stream consumers as an error all the same.
            finish(.failure(TransportError(
                message: cancelledNow ? "request cancelled" : "\(request.method) \(Self.redactedURL(request.url)): \(text)",
                notSent: notSent, cancelled: cancelledNow, kind: cancelledNow ? .other : CurlGlobal.kind(of: code))))
            return
        }
        var st = 0
        let infoCode = cdynsecret_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &st)
        guard infoCode == CURLE_OK else {
            finish(.failure(TransportError(message: "\(request.method) \(Self.redactedURL(request.url)): curl: no response code: \(String(cString: curl_easy_strerror(infoCode)))",
                                           notSent: false, cancelled: false)))
            return
        }
        status = st
        var version = 0
        if cdynsecret_curl_getinfo_long(h, CURLINFO_HTTP_VERSION, &version) != CURLE_OK { version = 0 }
        let versionText = version == CURL_HTTP_VERSION_2_0 ? "2" : version == CURL_HTTP_VERSION_1_0 ? "1.0" : "1.1"
        finish(.success(HTTPResponse(status: status, headers: headers, body: body, httpVersion: versionText)))
    }

    /// The code the loop completes a transfer with when it removed it for cancellation.
    static let cancelledCode = CURLE_ABORTED_BY_CALLBACK

    private func releaseHeaders() {
        curl_slist_free_all(headerList)
        headerList = nil
    }

    /// The URL without its query (which may name objects) for error messages.
    static func redactedURL(_ url: String) -> String {
        url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
    }

    private func check(_ code: CURLcode, _ what: String) throws(TransportError) {
        if code != CURLE_OK {
            throw TransportError(message: "curl: setting \(what): \(String(cString: curl_easy_strerror(code)))", notSent: true, cancelled: false)
        }
    }

    private func configure(_ h: UnsafeMutableRawPointer, easy: EasyHandle, headerList: inout UnsafeMutablePointer<curl_slist>?) throws(TransportError) {
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        try check(cdynsecret_curl_setopt_pointer(h, CURLOPT_ERRORBUFFER, easy.errorBuffer), "error buffer")
        try check(cdynsecret_curl_setopt_string(h, CURLOPT_URL, request.url), "URL")
        try check(cdynsecret_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1), "nosignal")
        try check(cdynsecret_curl_setopt_string(h, CURLOPT_CUSTOMREQUEST, request.method), "method")
        if request.method == "HEAD" { try check(cdynsecret_curl_setopt_long(h, CURLOPT_NOBODY, 1), "nobody") }
        if let body = request.body {
            try check(cdynsecret_curl_setopt_offset(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)), "body size")
            let code = body.withUnsafeBytes { raw in
                cdynsecret_curl_setopt_pointer(h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
            try check(code, "body")
        }
        for line in request.headers.map({ "\($0.name): \($0.value)" }) + ["Expect:"] {  // "Expect:": no 100-continue round trip
            guard let appended = curl_slist_append(headerList, line) else {
                throw TransportError(message: "curl: cannot build the header list (out of memory)", notSent: true, cancelled: false)
            }
            headerList = appended
        }
        let list = headerList
        try check(cdynsecret_curl_setopt_slist(h, CURLOPT_HTTPHEADER, list), "headers")
        try check(cdynsecret_curl_setopt_string(h, CURLOPT_ACCEPT_ENCODING, ""), "accept-encoding")
        if settings.http2 {
            try check(cdynsecret_curl_setopt_long(h, CURLOPT_HTTP_VERSION, cdynsecret_curl_http_version_2tls()), "http version")
            // Wait for a connection being set up that may multiplex rather than open another one.
            try check(cdynsecret_curl_setopt_long(h, CURLOPT_PIPEWAIT, 1), "pipewait")
        }
        try check(cdynsecret_curl_setopt_string(h, CURLOPT_PROTOCOLS_STR, "https,http"), "protocols")
        try check(cdynsecret_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(settings.connectTimeout)), "connect timeout")
        // TCP keepalive, so a half-open connection (a NAT drop, a lost API server node) is noticed.
        try check(cdynsecret_curl_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1), "keepalive")
        try check(cdynsecret_curl_setopt_long(h, CURLOPT_TCP_KEEPIDLE, 30), "keepalive idle")
        try check(cdynsecret_curl_setopt_long(h, CURLOPT_TCP_KEEPINTVL, 30), "keepalive interval")
        if onData == nil {
            try check(cdynsecret_curl_setopt_long(h, CURLOPT_TIMEOUT_MS, Self.milliseconds(request.timeout)), "timeout")
            try check(cdynsecret_curl_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, 1), "low speed limit")
            try check(cdynsecret_curl_setopt_long(h, CURLOPT_LOW_SPEED_TIME, max(1, Self.milliseconds(settings.stallTimeout) / 1000)), "low speed time")
        } else {
            // A stream that delivers nothing (not even a bookmark) for two minutes is treated as dead; the
            // informer then resumes from its last resourceVersion.
            try check(cdynsecret_curl_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, 1), "low speed limit")
            try check(cdynsecret_curl_setopt_long(h, CURLOPT_LOW_SPEED_TIME, 120), "low speed time")
        }
        // TLS
        if settings.insecureSkipVerify {
            try check(cdynsecret_curl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 0), "verify peer")
            try check(cdynsecret_curl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 0), "verify host")
        }
        if settings.caPEM != nil {
            // Trust only the configured CA, as client-go does: drop libcurl's compiled-in CA file and directory.
            try check(cdynsecret_curl_setopt_string(h, CURLOPT_CAINFO, nil), "CA file")
            try check(cdynsecret_curl_setopt_string(h, CURLOPT_CAPATH, nil), "CA path")
        }
        if let caBlob {
            // With extraCAPEM only, the system CA directory stays.
            try check(caBlob.withUnsafeBytes { cdynsecret_curl_setopt_blob(h, CURLOPT_CAINFO_BLOB, $0.baseAddress, $0.count) }, "CA data")
        }
        if let cert = settings.clientCertificatePEM {
            try check(cert.withUnsafeBytes { cdynsecret_curl_setopt_blob(h, CURLOPT_SSLCERT_BLOB, $0.baseAddress, $0.count) }, "client certificate")
            try check(cdynsecret_curl_setopt_string(h, CURLOPT_SSLCERTTYPE, "PEM"), "client certificate type")
        }
        if let key = settings.clientKeyPEM {
            try check(key.withUnsafeBytes { cdynsecret_curl_setopt_blob(h, CURLOPT_SSLKEY_BLOB, $0.baseAddress, $0.count) }, "client key")
            try check(cdynsecret_curl_setopt_string(h, CURLOPT_SSLKEYTYPE, "PEM"), "client key type")
        }
        if let proxy = settings.proxyURL {
            try check(cdynsecret_curl_setopt_string(h, CURLOPT_PROXY, proxy), "proxy")
        }
        if let noProxy = settings.noProxy {
            try check(cdynsecret_curl_setopt_string(h, CURLOPT_NOPROXY, noProxy), "no-proxy")
        }
        // Callbacks: non-capturing closures; the transfer comes back through the context pointer.
        try check(cdynsecret_curl_setopt_write_function(h, CURLOPT_WRITEFUNCTION, { data, size, count, context in
            guard let context, let data else { return 0 }
            let t = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            let n = size * count
            let bytes = UnsafeRawBufferPointer(start: data, count: n)
            t.deliverHeadIfNeeded()
            if let onData = t.onData {
                onData(Array(bytes))
            } else {
                if let max = t.request.maxResponseBytes, t.body.count + n > max {
                    t.exceededLimit = true
                    return 0  // libcurl ends the transfer with CURLE_WRITE_ERROR
                }
                t.body.append(contentsOf: bytes)
            }
            return n
        }), "write function")
        try check(cdynsecret_curl_setopt_pointer(h, CURLOPT_WRITEDATA, ctx), "write data")
        try check(cdynsecret_curl_setopt_write_function(h, CURLOPT_HEADERFUNCTION, { data, size, count, context in
            guard let context, let data else { return 0 }
            let t = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            let n = size * count
            t.headerLine(Array(UnsafeRawBufferPointer(start: data, count: n)))
            return n
        }), "header function")
        try check(cdynsecret_curl_setopt_pointer(h, CURLOPT_HEADERDATA, ctx), "header data")
        // Cancellation: the loop removes a cancelled transfer from the multi handle when it is woken.
    }

    func headerLine(_ bytes: [UInt8]) {
        // Header lines are ASCII framing (RFC 9112): trimmed and split as bytes, which costs a fraction of
        // Foundation's character-set trimming on every line of every response.
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A }
        var lo = 0, hi = bytes.count
        while lo < hi && isSpace(bytes[lo]) { lo += 1 }
        while hi > lo && isSpace(bytes[hi - 1]) { hi -= 1 }
        let line = bytes[lo..<hi]
        if line.isEmpty {
            // The end of a final answer's head: a watch learns it was accepted before any event arrives.
            if status >= 200 { deliverHeadIfNeeded() }
        } else if line.starts(with: Self.httpPrefix) {
            headers = []
            let fields = line.split(separator: 0x20, maxSplits: 2)
            status = fields.count > 1 ? Int(String(decoding: fields[1], as: UTF8.self)) ?? 0 : 0
        } else if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            let name = String(decoding: line[..<colon].map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
            var v = colon + 1
            while v < hi && isSpace(bytes[v]) { v += 1 }
            headers.append((name, String(decoding: bytes[v..<hi], as: UTF8.self)))
        }
    }

    private static let httpPrefix = Array("HTTP/".utf8)

    func deliverHeadIfNeeded() {
        guard !headDelivered else { return }
        headDelivered = true
        onHead?(status, headers)
    }

    static func milliseconds(_ d: Duration) -> Int {
        let c = d.components
        return Int(c.seconds) * 1000 + Int(c.attoseconds / 1_000_000_000_000_000)
    }
}

/// The thread that runs every transfer of one transport on a libcurl multi handle.
///
/// Other threads only `submit` transfers and `wake` the loop (both lock-free for the loop's own state);
/// everything else, the multi handle, the easy handles and the transfers' state, is touched only on the loop
/// thread, which is why the class is `@unchecked Sendable`. At most `limit` ordinary requests run at once
/// (the rest wait in order); streams are not limited. The thread starts with the first transfer.
final class TransferLoop: @unchecked Sendable {
    private struct Inbox {
        var transfers: [Transfer] = []
        var started = false
        var stopped = false
    }

    private let inbox = Mutex(Inbox())
    private let multi: UnsafeMutableRawPointer?
    private let limit: Int

    // Loop thread only.
    private var running: [UnsafeMutableRawPointer: (transfer: Transfer, easy: EasyHandle)] = [:]
    private var waiting: [Transfer] = []
    private var waitingHead = 0
    private var idle: [EasyHandle] = []
    private var ordinaryRunning = 0

    init(limit: Int, http2: Bool) {
        CurlGlobal.initialize()
        self.limit = limit
        multi = curl_multi_init()
        if let multi {
            // HTTP/2: requests share a connection (CURLPIPE_MULTIPLEX = 2); HTTP/1.1 needs one per request in flight.
            _ = cdynsecret_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, http2 ? 2 : 0)
        }
    }

    /// Hands `transfer` to the loop.
    func submit(_ transfer: Transfer) {
        let (accepted, startThread): (Bool, Bool) = inbox.withLock { box in
            guard !box.stopped else { return (false, false) }
            box.transfers.append(transfer)
            let first = !box.started
            box.started = true
            return (true, first)
        }
        guard accepted, let multi else {
            transfer.finish(.failure(TransportError(message: multi == nil ? "curl_multi_init failed" : "transport shut down",
                                                    notSent: true, cancelled: false)))
            return
        }
        if startThread {
            let thread = Thread { [self] in run() }
            thread.name = "dynsecret-curl"
            thread.start()
        }
        curl_multi_wakeup(multi)
    }

    /// Wakes the loop (a transfer was cancelled).
    func wake() {
        if let multi { curl_multi_wakeup(multi) }
    }

    /// Ends the loop: transfers still queued or running fail as cancelled.
    func shutdown() {
        let started: Bool = inbox.withLock {
            $0.stopped = true
            return $0.started
        }
        if started { wake() } else if let multi { curl_multi_cleanup(multi) }
    }

    private func run() {
        guard let multi else { return }
        var active: Int32 = 0
        while true {
            let (arrived, stopped): ([Transfer], Bool) = inbox.withLock { box in
                let taken = box.transfers
                box.transfers = []
                return (taken, box.stopped)
            }
            if stopped {
                for t in arrived { t.cancel() }
                for t in waiting[waitingHead...] { t.cancel() }
                for entry in running.values { entry.transfer.cancel() }
            }
            for t in arrived {
                if t.isStream || ordinaryRunning < limit { start(t) } else { waiting.append(t) }
            }
            removeCancelled()
            startWaiting()
            if stopped && running.isEmpty { break }
            _ = curl_multi_perform(multi, &active)
            var easy: UnsafeMutableRawPointer?
            var code = CURLE_OK
            while cdynsecret_curl_multi_next_done(multi, &easy, &code) != 0 {
                if let easy { end(easy, code) }
            }
            startWaiting()
            _ = curl_multi_poll(multi, nil, 0, 1000, nil)
        }
        idle.removeAll()
        curl_multi_cleanup(multi)
    }

    private func start(_ t: Transfer) {
        let easy = idle.popLast() ?? EasyHandle()
        guard t.begin(on: easy), let h = easy.handle else {
            idle.append(easy)
            return
        }
        guard curl_multi_add_handle(multi, h) == CURLM_OK else {
            t.complete(CURLE_FAILED_INIT, on: easy)
            idle.append(easy)
            return
        }
        running[h] = (t, easy)
        if !t.isStream { ordinaryRunning += 1 }
    }

    private func startWaiting() {
        while waitingHead < waiting.count, ordinaryRunning < limit {
            let t = waiting[waitingHead]
            waitingHead += 1
            start(t)
        }
        if waitingHead == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            waitingHead = 0
        }
    }

    private func end(_ h: UnsafeMutableRawPointer, _ code: CURLcode) {
        guard let entry = running.removeValue(forKey: h) else { return }
        curl_multi_remove_handle(multi, h)
        if !entry.transfer.isStream { ordinaryRunning -= 1 }
        entry.transfer.complete(code, on: entry.easy)
        // Keep a few handles for reuse (their settings are reset for every transfer).
        if idle.count < limit { idle.append(entry.easy) }
    }

    private func removeCancelled() {
        for (h, entry) in running where entry.transfer.isCancelled { end(h, Transfer.cancelledCode) }
    }
}
