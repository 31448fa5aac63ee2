public import DynSecretCore
public import DynSecretKube
public import Logging
public import ServiceLifecycle
internal import NIOCore

/// Settings of `Webhook`, with their defaults.
public struct WebhookConfiguration: Sendable {
    public var host = "0.0.0.0"
    public var port = 8443
    public var certificatePath: String
    public var keyPath: String
    public var policy = AdmissionPolicy()
    /// How often the certificate files are checked for changes.
    public var certificatePollInterval: Duration = .seconds(2)
    /// Event loop threads of the server.
    public var threads = System.coreCount

    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }
}

/// The validating admission webhook (`dynsecret webhook`): informer caches, the HTTPS server and the certificate
/// reloader, run as one swift-service-lifecycle `Service`. A graceful shutdown stops listening and ends the caches.
public final class Webhook: Service {
    public let configuration: WebhookConfiguration
    public let metrics: WebhookMetrics
    private let cache: AdmissionCache
    private let certificate: ServingCertificate
    private let logger: Logger
    private let clock: any Clock<Duration>
    /// Set once the server listens (for tests that bind port 0).
    private let bound = AsyncStream<Int>.makeStream()

    /// Loads the serving certificate (a `WebhookError` when it cannot be used); nothing listens before `run()`.
    public init(client: KubeClient, configuration: WebhookConfiguration, metrics: WebhookMetrics = WebhookMetrics(), logger: Logger,
                clock: any Clock<Duration> = ContinuousClock()) throws(WebhookError) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        cache = AdmissionCache(client: client, clock: clock)
        certificate = try ServingCertificate(certificatePath: configuration.certificatePath, keyPath: configuration.keyPath)
    }

    /// The port once listening (waits for it).
    public func port() async -> Int? {
        for await p in bound.stream { return p }
        return nil
    }

    public func run() async throws {
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
            group.addTask { await self.watchCertificate() }
            group.addTask { await self.reportSync() }
            // Everything ends on graceful shutdown (or cancellation).
            try? await gracefulShutdown()
            group.cancelAll()
        }
        await server.stop()
        logger.info("webhook.stopped")
    }

    private func watchCertificate() async {
        while !Task.isCancelled {
            do { try await clock.sleep(for: configuration.certificatePollInterval) } catch { return }
            do {
                if try certificate.reloadIfChanged() != nil {
                    metrics.certificateReloaded(success: true)
                    logger.info("webhook.certificate-reloaded", metadata: ["certificate": "\(certificate.certificatePath)"])
                }
            } catch {
                metrics.certificateReloaded(success: false)
                logger.warning("webhook.certificate-reload-failed", metadata: ["error": "\(error.message)"])
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
