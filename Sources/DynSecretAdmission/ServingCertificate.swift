internal import DynSecretCrypto
internal import NIOSSL
internal import Synchronization
internal import Foundation

/// The webhook's serving certificate, read from files and reloaded when they change (cert-manager and Secret volumes
/// replace them in place), or installed from memory (`--self-signed-ca`).
///
/// Every new connection takes the current TLS context; a connection keeps the context it started with, so a reload
/// never drops a request in flight. A pair that does not load (unreadable, not PEM, or a key that does not belong to
/// the certificate, as between the two writes of a rotation) is reported and the previous pair stays in force.
public final class ServingCertificate: Sendable {
    /// The files, or what the pair is named by in messages when it came from memory.
    public let certificatePath: String
    public let keyPath: String
    private let fromFiles: Bool
    private struct Loaded {
        var context: NIOSSLContext
        var certificate: [UInt8]
        var key: [UInt8]
    }
    private let state: Mutex<Loaded>

    /// Loads the pair; throws a `WebhookError` naming the file when it cannot be used.
    public init(certificatePath: String, keyPath: String) throws(WebhookError) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        fromFiles = true
        state = Mutex(try Self.load(certificatePath, keyPath))
    }

    /// A pair held in memory; `name` stands for it in messages.
    init(certificate: [UInt8], key: [UInt8], name: String) throws(WebhookError) {
        certificatePath = name
        keyPath = name
        fromFiles = false
        state = Mutex(try Self.make(certificate, key, name, name))
    }

    /// Replaces the pair held in memory; throws (keeping the previous pair) when the new one cannot be used.
    func install(certificate: [UInt8], key: [UInt8]) throws(WebhookError) {
        let loaded = try Self.make(certificate, key, certificatePath, keyPath)
        state.withLock { $0 = loaded }
    }

    /// The certificate in use.
    var certificate: [UInt8] { state.withLock { $0.certificate } }

    var context: NIOSSLContext { state.withLock { $0.context } }

    /// Reads the files; when their content changed, loads the new pair. Returns nil when nothing changed, true after a
    /// reload, and throws (keeping the previous pair) when the new content cannot be used.
    @discardableResult
    public func reloadIfChanged() throws(WebhookError) -> Bool? {
        guard fromFiles else { return nil }
        let cert = try Self.read(certificatePath, "certificate")
        let key = try Self.read(keyPath, "private key")
        let unchanged = state.withLock { $0.certificate == cert && $0.key == key }
        if unchanged { return nil }
        let loaded = try Self.make(cert, key, certificatePath, keyPath)
        state.withLock { $0 = loaded }
        return true
    }

    private static func read(_ path: String, _ what: String) throws(WebhookError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WebhookError("cannot read the serving \(what) \(path)")
        }
        return Array(data)
    }

    private static func load(_ certificatePath: String, _ keyPath: String) throws(WebhookError) -> Loaded {
        try make(try read(certificatePath, "certificate"), try read(keyPath, "private key"), certificatePath, keyPath)
    }

    private static func make(_ cert: [UInt8], _ key: [UInt8], _ certificatePath: String, _ keyPath: String) throws(WebhookError) -> Loaded {
        // The pair is checked with the system OpenSSL first (DynSecretCrypto), so the error names what is wrong.
        let leaf: X509Certificate
        let privateKey: PrivateKey
        do {
            guard let first = try X509Certificate.parseChain(pem: cert).first else { throw WebhookError("\(certificatePath): no PEM certificate") }
            leaf = first
        } catch let e as WebhookError {
            throw e
        } catch {
            throw WebhookError("\(certificatePath): not a PEM certificate (\(error))")
        }
        do {
            privateKey = try PrivateKey(pem: key)
        } catch {
            throw WebhookError("\(keyPath): not a PEM private key (\(error))")
        }
        guard leaf.matches(privateKey) else {
            throw WebhookError("\(keyPath) is not the private key of the certificate in \(certificatePath)")
        }
        do {
            let chain = try NIOSSLCertificate.fromPEMBytes(cert).map { NIOSSLCertificateSource.certificate($0) }
            var config = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem)))
            config.applicationProtocols = ["http/1.1"]
            config.minimumTLSVersion = .tlsv12
            return Loaded(context: try NIOSSLContext(configuration: config), certificate: cert, key: key)
        } catch {
            throw WebhookError("\(certificatePath), \(keyPath): cannot serve TLS with this pair (\(error))")
        }
    }
}

/// A webhook configuration or serving failure, with a message naming what to fix.
public struct WebhookError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
