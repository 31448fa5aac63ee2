public import DynSecretCore
public import DynSecretCrypto
public import DynSecretKube
internal import Foundation
public import Logging
public import ServiceLifecycle
internal import Synchronization

/// A controller start-up or run failure (the CLI exits 2 for start-up errors, 1 for a lost leadership).
public struct ControllerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// True when leadership was lost while running (not a configuration problem).
    public var leadershipLost = false
    public init(_ message: String, leadershipLost: Bool = false) {
        self.message = message
        self.leadershipLost = leadershipLost
    }
    public var description: String { message }
}

/// What `dynsecret controller` runs.
public struct ControllerConfiguration: Sendable {
    /// The policy file, polled for changes.
    public var policyPath: String
    public var policyPollInterval: Duration = .seconds(2)
    public var replicator = Replicator.Options()
    /// Leader election; nil means this process always writes.
    public var leaderElection: LeaderElector.Configuration?
    /// `host:port` for `/healthz` and `/readyz` (nil: none); the same address as `metricsAddress` serves both.
    public var healthAddress: (host: String, port: Int)?
    /// `host:port` for `/metrics` (nil: none).
    public var metricsAddress: (host: String, port: Int)?
    /// The at-rest store and the keyring sealing its records (nil: no records kept).
    public var store: AtRestStore?
    public var keyring: Keyring?
    /// This process's name in Events and the Lease.
    public var identity: String

    public init(policyPath: String, identity: String) {
        self.policyPath = policyPath
        self.identity = identity
    }
}

/// The controller as a `Service`: loads the policy, serves health and metrics, campaigns for leadership, runs a
/// `Replicator` for the current policy and swaps it when the policy file changes to a valid new policy (an invalid
/// one is logged and counted, and the running policy stays). On graceful shutdown (SIGTERM) it stops taking work,
/// lets the writes in flight finish, releases the Lease and returns.
public final class Controller: Service, Sendable {
    private struct State {
        var replicator: Replicator?
        var runTask: Task<Void, Never>?
        var stopping = false
        var lost = false
        var lastProbe: (at: ContinuousClock.Instant, ok: Bool, why: String)?
    }

    private let client: KubeClient
    /// A client without retries for the Lease and readiness probes: its requests never queue behind the workers',
    /// and each attempt is bounded by its caller's timeout.
    private let directClient: KubeClient
    private let configuration: ControllerConfiguration
    public let metrics: ControllerMetrics
    private let logger: Logger
    private let state = Mutex(State())
    private let elector: LeaderElector?
    private let recorder: EventRecorder
    private let storeRecords = Atomic<Int>(0)
    private let storeQueue: AsyncStream<Secret>.Continuation
    private let storeStream: AsyncStream<Secret>
    private let boundPorts = Mutex<[String: Int]>([:])

    /// A controller over `client`. Build `client` with `metrics.observer` as its observer so API requests are
    /// counted and readiness knows the API server answers.
    public init(client: KubeClient, configuration: ControllerConfiguration, metrics: ControllerMetrics, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        metrics.health.attach(logger)
        var once = RetryPolicy()
        once.maxAttempts = 1
        var direct = client.config
        direct.requestTimeout = .seconds(5)
        directClient = KubeClient(config: direct, maxConcurrentRequests: 2, retry: once, observer: metrics.observer)
        (storeStream, storeQueue) = AsyncStream<Secret>.makeStream()
        if let le = configuration.leaderElection {
            elector = LeaderElector(client: directClient, configuration: le, logger: logger)
        } else {
            elector = nil
        }
        recorder = EventRecorder(client: client, instance: configuration.identity, logger: logger)
    }

    /// Ports the endpoints are bound to (`health`, `metrics`), once running; for tests that bind port 0.
    public var ports: [String: Int] { boundPorts.withLock { $0 } }

    /// Why this process cannot run `policy` across clusters (nil: it can).
    func fleetProblem(_ policy: ReplicationPolicy) -> String? {
        guard policy.isMultiCluster, configuration.replicator.clusterName == nil else { return nil }
        return "policy \(configuration.policyPath): it declares member clusters; give --cluster-name (this hub's name, written to every replica as \(ReplicaMarkers.sourceClusterAnnotation))"
    }

    /// Reads and decodes the policy file.
    public static func loadPolicy(_ path: String) throws(ControllerError) -> (ReplicationPolicy, [UInt8]) {
        let bytes = try readPolicyFile(path)
        do { return (try ReplicationPolicy.load(bytes, source: path), bytes) } catch {
            throw ControllerError("\(error)")
        }
    }

    /// The most bytes of a policy file the controller reads.
    public static let maxPolicyBytes = 1 << 20

    /// The policy file's bytes (at most `maxPolicyBytes`), or an error that says why it cannot be read.
    static func readPolicyFile(_ path: String) throws(ControllerError) -> [UInt8] {
        if let problem = AtomicFile.readProblem(AtomicFile.kind(of: path)) { throw ControllerError("policy \(path): \(problem)") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ControllerError("policy \(path): permission denied") }
        defer { try? handle.close() }
        var bytes: [UInt8] = []
        do {
            while bytes.count <= maxPolicyBytes, let chunk = try handle.read(upToCount: maxPolicyBytes + 1 - bytes.count), !chunk.isEmpty {
                bytes.append(contentsOf: chunk)
            }
        } catch {
            throw ControllerError("policy \(path): cannot read the file: \(error.localizedDescription)")
        }
        if bytes.count > maxPolicyBytes { throw ControllerError("policy \(path): larger than \(maxPolicyBytes >> 20) MiB, the most dynsecret reads for a policy") }
        return bytes
    }

    public func run() async throws {
        let (initial, initialBytes) = try Self.loadPolicy(configuration.policyPath)
        if let problem = fleetProblem(initial) { throw ControllerError(problem) }
        metrics.policyLoaded(valid: true)
        logger.info("policy loaded", metadata: ["policy": "\(initial.name)", "rules": "\(initial.rules.count)"])
        if let store = configuration.store, let count = try? store.records().count { storeRecords.store(count, ordering: .relaxed) }
        metrics.setStoreRecords(storeRecords.load(ordering: .relaxed))
        let storeTask = Task { await self.storeLoop() }
        // Credentials accepted again, or the API server reachable again: retry every namespace now.
        metrics.health.onRecovery { [weak self] in
            guard let self, let replicator = self.state.withLock({ $0.replicator }), replicator.hasSynced else { return }
            replicator.enqueueAll()
        }
        // One way out: the endpoints stop, the store writer finishes its queue, then the outcome is reported.
        var servers: [EndpointServer] = []
        var failure: (any Error)?
        do {
            servers = try await startEndpoints()
            let bound = ports
            logger.info("endpoints listening", metadata: ["health": "\(bound["health"].map(String.init) ?? "off")", "metrics": "\(bound["metrics"].map(String.init) ?? "off")"])
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler {
                    try await self.main(initial, initialBytes)
                } onGracefulShutdown: {
                    self.logger.info("shutting down: finishing the writes in flight")
                    self.requestStop()
                }
            } onCancel: {
                self.requestStop()
            }
        } catch {
            failure = error
        }
        for s in servers { await s.stop() }
        storeQueue.finish()
        await storeTask.value
        if let failure { throw failure }
    }

    /// Stops the current replicator: after a lost Lease at once (no write may follow), otherwise by draining the
    /// reconciles in flight for at most `drainLimit`, then cancelling them.
    private func requestStop(lost: Bool = false) {
        let (r, task) = state.withLock { s -> (Replicator?, Task<Void, Never>?) in
            s.stopping = true
            if lost { s.lost = true }
            return (s.replicator, s.runTask)
        }
        if lost {
            task?.cancel()
            return
        }
        if let r {
            let limit = drainLimit
            Task {
                let drained = await withTimeout(limit) { await r.stop(); return true }
                if drained == nil { task?.cancel() }
            }
        }
    }

    /// How long a shutdown waits for the reconciles in flight before cancelling them.
    private var drainLimit: Duration { .seconds(5) }

    private var stopping: Bool { state.withLock { $0.stopping } }

    private func main(_ initial: ReplicationPolicy, _ initialBytes: [UInt8]) async throws {
        let electionTask: Task<Void, Never>? = elector.map { elector in
            Task {
                let outcome = await elector.run {
                    self.metrics.setLeader(true)
                    self.state.withLock { $0.replicator }?.enqueueAll()
                }
                self.metrics.setLeader(false)
                if outcome == .lost { self.requestStop(lost: true) }
            }
        }
        if elector == nil { metrics.setLeader(true) }
        var policy = initial
        var lastBytes = initialBytes
        while !stopping {
            let replicator = Replicator(
                policy: policy, client: client, options: configuration.replicator, metrics: metrics, events: recorder, logger: logger,
                canWrite: { [elector] in elector?.isLeader ?? true },
                onSource: { [weak self] secret in self?.keep(secret) }
            )
            let runTask = Task { await replicator.run() }
            let stopNow = state.withLock { s -> Bool in
                s.replicator = replicator
                s.runTask = runTask
                return s.stopping
            }
            if stopNow {
                runTask.cancel()
                await runTask.value
                break
            }
            // Poll the policy file until it changes to a valid policy or a stop is requested.
            var next: (ReplicationPolicy, [UInt8])?
            var waited = Duration.zero
            var unreadable: String?
            while !stopping && next == nil {
                do { try await Task.sleep(for: .milliseconds(100)) } catch { requestStop(); break }
                waited += .milliseconds(100)
                guard waited >= configuration.policyPollInterval else { continue }
                waited = .zero
                let bytes: [UInt8]
                do { bytes = try Self.readPolicyFile(configuration.policyPath) } catch {
                    // Said once per distinct problem (a ConfigMap volume swaps its files in place: a moment without
                    // the file is normal, and the running policy stays either way).
                    if unreadable != error.message {
                        unreadable = error.message
                        logger.warning("policy file cannot be read; the running policy stays in force", metadata: ["error": "\(error.message)"])
                    }
                    continue
                }
                unreadable = nil
                guard bytes != lastBytes else { continue }
                lastBytes = bytes
                do {
                    let p = try ReplicationPolicy.load(bytes, source: configuration.policyPath)
                    if let problem = fleetProblem(p) { throw ControllerError(problem) }
                    next = (p, bytes)
                } catch {
                    metrics.policyLoaded(valid: false)
                    logger.error("policy file changed but is invalid; the running policy stays in force", metadata: ["error": "\(error)"])
                }
            }
            if next != nil {
                await replicator.stop()
            }
            await runTask.value
            if let next {
                policy = next.0
                metrics.policyLoaded(valid: true)
                logger.info("policy reloaded", metadata: ["policy": "\(policy.name)", "rules": "\(policy.rules.count)"])
            }
        }
        electionTask?.cancel()
        await electionTask?.value
        await elector?.release()
        metrics.setLeader(false)
        if state.withLock({ $0.lost }) {
            throw ControllerError("leadership lost; exiting so that a fresh process campaigns again", leadershipLost: true)
        }
        logger.info("stopped")
    }

    // MARK: at-rest records

    /// Hands a source version to the store writer (a serial task, so sealing and fsync never hold up the informers).
    private func keep(_ secret: Secret) {
        guard configuration.store != nil, configuration.keyring != nil else { return }
        storeQueue.yield(secret)
    }

    /// Writes each source version as a record, unless the store has it already or its content equals the version
    /// this process stored last for that Secret (a metadata-only change).
    private func storeLoop() async {
        guard let store = configuration.store, let keyring = configuration.keyring else { return }
        var lastContent: [String: String] = [:]
        for await secret in storeStream {
            guard let ns = secret.metadata.namespace, let name = secret.metadata.name else { continue }
            let key = "\(ns)/\(name)/\(secret.metadata.uid ?? "")"
            let content = ReplicaContentHash.of(secret)
            if lastContent[key] == content { continue }
            let generation = secret.metadata.resourceVersion.flatMap { UInt64($0) } ?? 0
            do {
                let path = try store.path(namespace: ns, name: name, uid: secret.metadata.uid ?? "", generation: generation)
                if !FileManager.default.fileExists(atPath: path) {
                    try store.write(secret, generation: generation, keyring: keyring, created: UInt64(Date().timeIntervalSince1970))
                    metrics.storeWrite(succeeded: true)
                    metrics.setStoreRecords(storeRecords.add(1, ordering: .relaxed).newValue)
                    logger.debug("kept an at-rest record", metadata: ["secret": "\(ns)/\(name)", "generation": "\(generation)"])
                }
                lastContent[key] = content
            } catch {
                metrics.storeWrite(succeeded: false)
                logger.error("could not keep an at-rest record", metadata: ["secret": "\(ns)/\(name)", "error": "\(error.message)"])
            }
        }
    }

    // MARK: endpoints

    private func startEndpoints() async throws -> [EndpointServer] {
        var servers: [EndpointServer] = []
        let health = configuration.healthAddress
        let metricsAt = configuration.metricsAddress
        let same = health != nil && metricsAt != nil && health!.host == metricsAt!.host && health!.port == metricsAt!.port && health!.port != 0
        do {
            if let h = health {
                let s = try await EndpointServer(host: h.host, port: h.port) { [weak self] path in
                    await self?.serve(path, health: true, metrics: same) ?? EndpointResponse(status: 503, body: [])
                }
                servers.append(s)
                boundPorts.withLock { $0["health"] = s.port }
                if same { boundPorts.withLock { $0["metrics"] = s.port } }
            }
            if let m = metricsAt, !same {
                let s = try await EndpointServer(host: m.host, port: m.port) { [weak self] path in
                    await self?.serve(path, health: false, metrics: true) ?? EndpointResponse(status: 503, body: [])
                }
                servers.append(s)
                boundPorts.withLock { $0["metrics"] = s.port }
            }
        } catch {
            for s in servers { await s.stop() }
            throw ControllerError("cannot listen for the health or metrics endpoint: \(error)")
        }
        return servers
    }

    private func serve(_ path: String, health: Bool, metrics serveMetrics: Bool) async -> EndpointResponse {
        switch path {
        case "/healthz" where health, "/livez" where health:
            return EndpointResponse(status: 200, body: Array("ok\n".utf8))
        case "/readyz" where health:
            let (ok, why) = await readiness()
            metrics.setReady(ok)
            return EndpointResponse(status: ok ? 200 : 503, body: Array((ok ? "ok\n" : "not ready: \(why)\n").utf8))
        case "/metrics" where serveMetrics:
            metrics.setReady(await readiness().0)
            return EndpointResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.exposition())
        default:
            return EndpointResponse(status: 404, body: Array("not found\n".utf8))
        }
    }

    /// Ready when the current policy's caches are synced, the API server answered recently (or answers now), and it
    /// has not been refusing the controller's credentials (401/403 with no success for `APIHealth.authGrace`; while
    /// it refuses them, each readiness check probes again, at most every 2 s, so a restored credential is seen).
    func readiness() async -> (Bool, String) {
        let (replicator, probe, stopping) = state.withLock { ($0.replicator, $0.lastProbe, $0.stopping) }
        let health = metrics.health
        let now = ContinuousClock.now
        if stopping { return (false, "shutting down") }
        if let problem = health.authProblem(at: now) {
            if let probe, now - probe.at < .seconds(2) { return (false, problem) }
            _ = await probeAPIServer(at: now)
            if let still = health.authProblem() { return (false, still) }
        }
        guard let replicator, replicator.hasSynced else {
            let failing = health.failing.map(\.summary)
            return (false, "caches not synced" + (failing.isEmpty ? "" : ": " + failing.joined(separator: "; ")))
        }
        if let last = health.lastAnswer, now - last < .seconds(30) { return (true, "") }
        if let probe, now - probe.at < .seconds(5) { return (probe.ok, probe.ok ? "" : probe.why) }
        let ok = await probeAPIServer(at: now)
        return (ok, ok ? "" : state.withLock { $0.lastProbe?.why ?? "" })
    }

    /// `GET /version` with the controller's credentials: true for any answer but a refusal of them.
    private func probeAPIServer(at now: ContinuousClock.Instant) async -> Bool {
        let direct = directClient
        let ok = await withTimeout(.seconds(3)) { () async -> Bool in
            do throws(KubeError) {
                _ = try await direct.call("GET", "/version")
                return true
            } catch {
                return error.httpStatus > 0 && error.httpStatus < 500 && error.httpStatus != 401 && error.httpStatus != 403
            }
        } ?? false
        let why = ok ? "" : (metrics.health.failing.first?.summary ?? "the API server does not answer")
        state.withLock { $0.lastProbe = (now, ok, why) }
        return ok
    }
}
