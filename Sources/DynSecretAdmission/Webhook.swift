public import DynSecretCore
public import DynSecretKube
public import Logging
public import ServiceLifecycle
internal import NIOCore
internal import DynSecretCrypto
internal import Foundation

/// Settings of `Webhook`, with their defaults.
public struct WebhookConfiguration: Sendable {
    public var host = "0.0.0.0"
    public var port = 8443
    /// The serving certificate files; unused with `selfSigned`.
    public var certificatePath: String
    public var keyPath: String
    /// Set for `--self-signed-ca`: the certificate comes from a Secret the webhook keeps itself.
    public var selfSigned: SelfSignedSettings?
    public var policy = AdmissionPolicy()
    /// How often the certificate files (or the self-signed Secret) are checked for changes.
    public var certificatePollInterval: Duration = .seconds(2)
    /// Event loop threads of the server.
    public var threads = System.coreCount

    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }

    public init(selfSigned: SelfSignedSettings) {
        certificatePath = ""
        keyPath = ""
        self.selfSigned = selfSigned
    }
}

/// The validating admission webhook (`dynsecret webhook`): informer caches, the HTTPS server and the certificate
/// reloader, run as one swift-service-lifecycle `Service`. A graceful shutdown stops listening and ends the caches.
public final class Webhook: Service {
    public let configuration: WebhookConfiguration
    public let metrics: WebhookMetrics
    private let cache: AdmissionCache
    /// The files' pair, loaded at init; nil with `selfSigned` until `run()` has one.
    private let fileCertificate: ServingCertificate?
    private let selfSigned: SelfSignedCertificates?
    private let logger: Logger
    private let clock: any Clock<Duration>
    /// Set once the server listens (for tests that bind port 0).
    private let bound = AsyncStream<Int>.makeStream()

    /// Loads the serving certificate files (a `WebhookError` when they cannot be used); nothing listens before `run()`.
    public init(client: KubeClient, configuration: WebhookConfiguration, metrics: WebhookMetrics = WebhookMetrics(), logger: Logger,
                clock: any Clock<Duration> = ContinuousClock()) throws(WebhookError) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        cache = AdmissionCache(client: client, clock: clock)
        if let settings = configuration.selfSigned {
            fileCertificate = nil
            selfSigned = SelfSignedCertificates(client: client, settings: settings)
        } else {
            fileCertificate = try ServingCertificate(certificatePath: configuration.certificatePath, keyPath: configuration.keyPath)
            selfSigned = nil
        }
    }

    /// The port once listening (waits for it).
    public func port() async -> Int? {
        for await p in bound.stream { return p }
        return nil
    }

    public func run() async throws {
        let certificate: ServingCertificate
        var issuer: [UInt8] = []
        if let selfSigned {
            guard let first = try await firstSelfSigned(selfSigned) else { return }
            (certificate, issuer) = first
        } else {
            certificate = fileCertificate!
            if let leaf = try? X509Certificate.parseChain(pem: certificate.certificate).first { metrics.setCertificateExpiry(leaf.notAfter) }
        }
        let server = try await WebhookServer(host: configuration.host, port: configuration.port, certificate: certificate,
                                             reviewer: AdmissionReviewer(policy: configuration.policy), state: cache, metrics: metrics,
                                             logger: logger, threads: configuration.threads)
        logger.info("webhook.listening", metadata: ["address": "\(configuration.host):\(server.port)",
                                                    "private-registries": "\(configuration.policy.privateRegistries.joined(separator: ","))",
                                                    "default-mode": "\(configuration.policy.defaultMode.rawValue)"])
        bound.continuation.yield(server.port)
        bound.continuation.finish()
        await withDiscardingTaskGroup { group in
            let cache = self.cache
            group.addTask { await cache.run() }
            if let selfSigned = self.selfSigned {
                group.addTask { [issuer] in await self.keepSelfSigned(selfSigned, certificate, servedIssuer: issuer) }
            } else {
                group.addTask { await self.watchCertificate(certificate) }
            }
            group.addTask { await self.reportSync() }
            // Everything ends on graceful shutdown (or cancellation).
            try? await gracefulShutdown()
            group.cancelAll()
        }
        await server.stop()
        logger.info("webhook.stopped")
    }

    private func watchCertificate(_ certificate: ServingCertificate) async {
        while !Task.isCancelled {
            do { try await clock.sleep(for: configuration.certificatePollInterval) } catch { return }
            do {
                if try certificate.reloadIfChanged() != nil {
                    metrics.certificateReloaded(success: true)
                    if let leaf = try? X509Certificate.parseChain(pem: certificate.certificate).first { metrics.setCertificateExpiry(leaf.notAfter) }
                    logger.info("webhook.certificate-reloaded", metadata: ["certificate": "\(certificate.certificatePath)"])
                }
            } catch {
                metrics.certificateReloaded(success: false)
                logger.warning("webhook.certificate-reload-failed", metadata: ["error": "\(error.message)"])
            }
        }
    }

    /// The first self-signed pair: retried while the API server cannot be reached or refuses; nil when cancelled.
    /// A foreign Secret of that name is an error that ends the webhook.
    private func firstSelfSigned(_ manager: SelfSignedCertificates) async throws -> (ServingCertificate, issuer: [UInt8])? {
        var delay = Duration.milliseconds(500)
        while !Task.isCancelled {
            do {
                let material = try await manager.ensure()
                _ = await inject(manager, material)
                let certificate = try ServingCertificate(certificate: material.certificate, key: material.key, name: "Secret \(manager.secretRef)")
                metrics.setCertificateExpiry(material.notAfter)
                logger.info("webhook.self-signed-certificate", metadata: ["secret": "\(manager.secretRef)", "not-after": "\(material.notAfter)"])
                return (certificate, material.issuer)
            } catch let error as WebhookError {
                throw error  // a foreign Secret, or a pair that cannot serve TLS
            } catch let error as CryptoError {
                throw WebhookError("--self-signed-ca: \(error)")
            } catch {
                logger.warning("webhook.self-signed-unavailable", metadata: ["secret": "\(manager.secretRef)", "error": "\(error)", "retry-in": "\(delay)"])
                do { try await clock.sleep(for: delay) } catch { return nil }
                delay = min(delay * 2, .seconds(30))
            }
        }
        return nil
    }

    /// Sets the CA bundle in the webhook configuration; true when the API server trusts `material`'s CA (or there is
    /// no configuration to update yet).
    private func inject(_ manager: SelfSignedCertificates, _ material: SelfSignedMaterial) async -> Bool {
        do {
            if try await manager.inject(material.bundle) { return true }
            logger.warning("webhook.configuration-not-found", metadata: ["validatingwebhookconfiguration": "\(manager.settings.webhookConfiguration)"])
            return true
        } catch {
            logger.warning("webhook.ca-bundle-not-injected", metadata: ["validatingwebhookconfiguration": "\(manager.settings.webhookConfiguration)", "error": "\(error)"])
            return false
        }
    }

    /// Checks the self-signed Secret every poll interval: renews what is due and keeps the bundle injected. A new
    /// certificate from the CA already in use is served at once; one from a new CA only after that CA has been in
    /// the injected bundle for two poll intervals (at least 10 s), because API servers read webhook configurations
    /// through their own caches and each lags. The certificate in use is replaced anyway when about to expire.
    private func keepSelfSigned(_ manager: SelfSignedCertificates, _ certificate: ServingCertificate, servedIssuer first: [UInt8]) async {
        var servedNotAfter = (try? X509Certificate.parseChain(pem: certificate.certificate).first?.notAfter) ?? 0
        var servedIssuer = first
        var trustedSince: [[UInt8]: Int64] = [:]
        let interval = SelfSignedCertificates.seconds(configuration.certificatePollInterval)
        let settle = max(2 * interval, 10)
        while !Task.isCancelled {
            do { try await clock.sleep(for: configuration.certificatePollInterval) } catch { return }
            do {
                let material = try await manager.ensure()
                let now = Int64(Date().timeIntervalSince1970)
                if await inject(manager, material) { trustedSince[material.issuer] = trustedSince[material.issuer] ?? now }
                guard material.certificate != certificate.certificate else { continue }
                let settled = material.issuer == servedIssuer || trustedSince[material.issuer].map { now - $0 >= settle } == true
                guard settled || servedNotAfter - now < 2 * interval else { continue }
                try certificate.install(certificate: material.certificate, key: material.key)
                servedNotAfter = material.notAfter
                servedIssuer = material.issuer
                metrics.certificateReloaded(success: true)
                metrics.setCertificateExpiry(material.notAfter)
                logger.info("webhook.certificate-rotated", metadata: ["secret": "\(manager.secretRef)", "not-after": "\(material.notAfter)"])
            } catch {
                metrics.certificateReloaded(success: false)
                logger.warning("webhook.self-signed-check-failed", metadata: ["secret": "\(manager.secretRef)", "error": "\(error)"])
            }
        }
    }

    private func reportSync() async {
        while !Task.isCancelled && !cache.hasSynced {
            do { try await clock.sleep(for: .milliseconds(100)) } catch { return }
        }
        metrics.setSynced(cache.hasSynced)
        let counts = cache.counts
        logger.info("webhook.caches-synced", metadata: ["pull-secrets": "\(counts.pullSecrets)", "service-accounts": "\(counts.serviceAccounts)"])
    }
}
