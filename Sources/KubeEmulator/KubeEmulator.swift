internal import DynSecretCore
internal import Synchronization
internal import Foundation
internal import NIOCore
internal import NIOSSL

/// Settings for a `KubeEmulator`.
public struct EmulatorOptions: Sendable {
    /// Loopback address to listen on.
    public var host: String = "127.0.0.1"
    /// Port; 0 picks a free one.
    public var port: Int = 0
    /// Accepted bearer tokens with their permissions; empty means no authentication (every request is admin).
    public var tokens: [TokenGrant] = []
    /// PEM certificate chain and key files for TLS; both nil serves plain HTTP.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Fault injection.
    public var faults = Faults()
    /// Change events retained for watches; a watch from an older version gets 410 Expired.
    public var watchWindow: Int = 50_000
    /// How often watches that asked for bookmarks get one.
    public var bookmarkInterval: Duration = .seconds(1)

    public init() {}
}

/// A Kubernetes API server emulator for the kinds dynsecret uses (Namespaces, Secrets, ConfigMaps, ServiceAccounts, Events,
/// Leases): discovery, CRUD with resourceVersion, selectors, paging, watch with bookmarks and 410, Secret validation,
/// bearer tokens with per-token permissions, fault injection and request counters. For tests and development only.
public final class KubeEmulator: Sendable {
    private let listening: Mutex<HTTPServer>
    private var server: HTTPServer { listening.withLock { $0 } }
    private let router: Router
    private let tls: NIOSSLContext?
    private let interval: TimeAmount
    private let boundPort: Int
    /// The options it was started with.
    public let options: EmulatorOptions

    private init(server: HTTPServer, router: Router, tls: NIOSSLContext?, interval: TimeAmount, options: EmulatorOptions) {
        listening = Mutex(server)
        boundPort = server.port
        self.router = router
        self.tls = tls
        self.interval = interval
        self.options = options
    }

    /// Starts listening; returns once the port is bound.
    public static func start(_ options: EmulatorOptions = EmulatorOptions()) async throws -> KubeEmulator {
        guard options.host == "127.0.0.1" || options.host == "::1" || options.host == "localhost" else {
            throw EmulatorError("the emulator listens on loopback only (127.0.0.1 or ::1), not \(options.host)")
        }
        var tls: NIOSSLContext?
        if let cert = options.tlsCertificatePath, let key = options.tlsKeyPath {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(cert).map { NIOSSLCertificateSource.certificate($0) }
                var config = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                config.applicationProtocols = ["http/1.1"]
                tls = try NIOSSLContext(configuration: config)
            } catch {
                throw EmulatorError("cannot load TLS certificate \(cert) / key \(key): \(error)")
            }
        } else if options.tlsCertificatePath != nil || options.tlsKeyPath != nil {
            throw EmulatorError("--tls-cert and --tls-key must be given together")
        }
        let store = Store(window: options.watchWindow)
        let router = Router(store: store, grants: options.tokens, faults: options.faults)
        let c = options.bookmarkInterval.components
        let interval = TimeAmount.nanoseconds(c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)
        let server = try await HTTPServer(host: options.host, port: options.port, router: router, tls: tls, bookmarkInterval: interval)
        let emulator = KubeEmulator(server: server, router: router, tls: tls, interval: interval, options: options)
        router.serverURL.withLock { $0 = emulator.url }
        return emulator
    }

    /// The bound port.
    public var port: Int { boundPort }

    /// The base URL clients use, such as `https://127.0.0.1:40123`.
    public var url: String {
        let scheme = options.tlsCertificatePath == nil ? "http" : "https"
        let host = options.host == "::1" ? "[::1]" : options.host
        return "\(scheme)://\(host):\(port)"
    }

    /// A kubeconfig (YAML) for this server, using `token` and trusting `caPEM` when given.
    public func kubeconfig(token: String? = nil, caPEM: [UInt8]? = nil, namespace: String = "default") -> String {
        var lines = ["apiVersion: v1", "kind: Config", "clusters:", "- name: kube-emulator", "  cluster:", "    server: \(url)"]
        if let caPEM { lines.append("    certificate-authority-data: \(Base64.encode(caPEM))") }
        lines += ["contexts:", "- name: kube-emulator", "  context:", "    cluster: kube-emulator", "    user: kube-emulator",
                  "    namespace: \(namespace)", "current-context: kube-emulator", "users:", "- name: kube-emulator"]
        if let token { lines += ["  user:", "    token: \(token)"] } else { lines.append("  user: {}") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Request counters: by verb (`create`), by client and verb (`alice create`), by verb and resource
    /// (`create secrets`), denials by client (`alice forbidden`), plus `connections`, `unauthorized`, `throttled`,
    /// `dropped-watches`.
    public func counters() -> [String: Int] { router.counters.withLock { $0 } }

    /// Resets the counters.
    public func resetCounters() { router.counters.withLock { $0 = [:] } }

    /// Stops accepting `token` (as when a ServiceAccount token is revoked); requests carrying it get 401.
    public func revoke(token: String) { _ = router.grants.withLock { $0.removeValue(forKey: token) } }

    /// Accepts `grant`'s token (again).
    public func grant(_ grant: TokenGrant) { router.grants.withLock { $0[grant.token] = grant } }

    /// Replaces the fault settings.
    public func setFaults(_ faults: Faults) { router.faults.withLock { $0 = faults } }

    /// Ends every open watch (clients must reconnect): `abrupt` drops the connections mid-stream instead
    /// of ending the responses. Returns how many watches it ended.
    @discardableResult
    public func dropWatches(abrupt: Bool = false) -> Int { router.store.closeAllWatches(abrupt: abrupt) }

    /// The number of watches open now.
    public var openWatches: Int { router.store.openWatches }

    /// Forgets retained watch events: a watch from any earlier resourceVersion gets 410 Expired.
    public func compact() { router.store.compact() }

    /// The current resourceVersion.
    public var resourceVersion: Int { router.store.currentRV }

    /// Stops listening and closes every connection.
    public func stop() async { await server.stop() }

    /// Stops serving (every connection closed, the port released) but keeps the stored objects: `resume()` then
    /// serves them again on the same port, as an API server restarted with its etcd intact.
    public func pause() async { await server.stop() }

    /// Serves again on the port it had (after `pause()`).
    public func resume() async throws {
        let port = self.port
        let next = try await HTTPServer(host: options.host, port: port, router: router, tls: tls, bookmarkInterval: interval)
        listening.withLock { $0 = next }
    }
}

/// An emulator start-up problem.
public struct EmulatorError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
