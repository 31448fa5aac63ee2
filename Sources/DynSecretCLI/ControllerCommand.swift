internal import ArgumentParser
internal import DynSecretController
internal import DynSecretCore
internal import DynSecretCrypto
internal import DynSecretKube
internal import Foundation
internal import Logging
internal import ServiceLifecycle
internal import UnixSignals

/// `dynsecret controller`: the in-cluster replicator.
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run the replication controller: keep replicas of selected Secrets current across namespaces.",
        discussion: """
            Watches Namespaces, the policy's source Secrets, replicas (label dynsecret.io/replica=true) and the \
            ServiceAccounts it patches — never every Secret of the cluster — and reconciles each target namespace \
            with the replication planner (see 'dynsecret replicate' and docs/controller.md). Configured from the \
            kubeconfig (--kubeconfig, --context, KUBECONFIG, ~/.kube/config) or in-cluster.

            The policy file is polled and reloaded when it changes; an invalid new policy is logged and counted \
            (dynsecret_policy_errors_total) and the running policy stays in force. With --store and --keyring every \
            source version read is kept as an encrypted at-rest record ('dynsecret store restore' brings a deleted \
            source back). With --leader-elect only the holder of the Lease writes. SIGTERM or SIGINT: stop taking \
            work, finish the writes in flight, release the Lease, exit 0. Exit 1 when leadership is lost, 2 for a \
            configuration error.

            Endpoints: /healthz and /readyz on --health-addr, /metrics (Prometheus text) on --metrics-addr; \
            'off' disables one. Logs go to standard error, as text or JSON lines, without secret values.
            """
    )

    @Option(name: .long, help: ArgumentHelp("ReplicationPolicy file (polled for changes).", valueName: "file"))
    var policy: String

    @Option(name: .long, help: ArgumentHelp("At-rest store directory (with --keyring).", valueName: "dir"))
    var store: String?

    @Option(name: .long, help: ArgumentHelp("Keyring file sealing the at-rest records (0600, or a Secret volume file mode 0440).", valueName: "file"))
    var keyring: String?

    @Option(name: .customLong("health-addr"), help: ArgumentHelp("Address for /healthz and /readyz, or 'off'.", valueName: "host:port"))
    var healthAddr = "0.0.0.0:8081"

    @Option(name: .customLong("metrics-addr"), help: ArgumentHelp("Address for /metrics, or 'off'.", valueName: "host:port"))
    var metricsAddr = "0.0.0.0:8080"

    @Flag(name: .customLong("leader-elect"), help: "Write only while holding the coordination.k8s.io/v1 Lease.")
    var leaderElect = false

    @Option(name: .customLong("leader-election-namespace"), help: ArgumentHelp("Namespace of the Lease (default: POD_NAMESPACE, else the configured namespace).", valueName: "ns"))
    var leaderElectionNamespace: String?

    @Option(name: .customLong("leader-election-id"), help: ArgumentHelp("Name of the Lease.", valueName: "name"))
    var leaderElectionID = "dynsecret-controller"

    @Option(name: .customLong("lease-duration"), help: ArgumentHelp("How long a Lease is valid without renewal.", valueName: "duration"))
    var leaseDuration = "15s"

    @Option(name: .customLong("renew-deadline"), help: ArgumentHelp("How long the leader keeps trying to renew before giving up.", valueName: "duration"))
    var renewDeadline = "10s"

    @Option(name: .customLong("retry-period"), help: ArgumentHelp("Time between Lease attempts.", valueName: "duration"))
    var retryPeriod = "2s"

    @Option(name: .long, help: "Target namespaces reconciled at once, per cluster (their requests share --max-requests).")
    var workers = 32

    @Option(name: .long, help: ArgumentHelp("Reconcile every target namespace again this often (safety net).", valueName: "duration"))
    var resync = "10m"

    @Option(name: .customLong("policy-poll"), help: ArgumentHelp("How often the policy file is checked for changes.", valueName: "duration"))
    var policyPoll = "2s"

    @Option(name: .customLong("log-format"), help: "Log format: text or json.")
    var logFormat: LogFormat = .text

    @Option(name: .customLong("log-level"), help: "Log level: debug, info, warning, error.")
    var logLevel = "info"

    @Option(name: .customLong("max-requests"), help: "Kubernetes API requests in flight at once (watches not counted).")
    var maxRequests = 16

    @Option(name: .customLong("qps"), help: "Client-side limit: Kubernetes API requests per second on average (0: no limit; the API server's Priority and Fairness and --max-requests bound the load).")
    var qps: Double = 0

    @Option(name: .customLong("burst"), help: "Client-side limit: requests allowed at once above --qps (default: --qps, at least 1).")
    var burst = 0

    @Option(name: .customLong("cluster-name"), help: ArgumentHelp("This hub's name, written to every replica as dynsecret.io/source-cluster (required when the policy declares member clusters; unique per hub).", valueName: "name"))
    var clusterName: String?

    @Option(name: .customLong("member-kubeconfig"), help: ArgumentHelp("Kubeconfig whose contexts the policy's context and contextPattern clusters name.", valueName: "path"))
    var memberKubeconfig: String?

    @OptionGroup var connection: ClusterConnection

    enum LogFormat: String, ExpressibleByArgument { case text, json }

    /// The client-side rate limit the flags ask for; none by default (see `RateLimit`).
    var rateLimit: RateLimit? {
        qps > 0 ? RateLimit(qps: qps, burst: burst > 0 ? burst : Int(qps.rounded(.up))) : nil
    }

    func validate() throws {
        if (store == nil) != (keyring == nil) { throw ValidationError("--store and --keyring go together") }
        if workers < 1 || workers > 256 { throw ValidationError("--workers must be between 1 and 256") }
        if maxRequests < 1 || maxRequests > 1024 { throw ValidationError("--max-requests must be between 1 and 1024") }
        if !(qps >= 0 && qps <= 1_000_000) { throw ValidationError("--qps must be between 0 (no limit) and 1000000") }
        if burst < 0 || burst > 1_000_000 { throw ValidationError("--burst must be between 0 and 1000000") }
        if burst > 0 && qps == 0 { throw ValidationError("--burst needs --qps") }
        if let clusterName, let p = KubeNames.dns1123LabelProblems(clusterName).first { throw ValidationError("--cluster-name: \(p)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
    }

    func run() async throws {
        let env = CommandIO.current.environment
        let lease = try Self.duration(leaseDuration, "--lease-duration")
        let renew = try Self.duration(renewDeadline, "--renew-deadline")
        let retry = try Self.duration(retryPeriod, "--retry-period")
        if !(retry < renew && renew < lease) {
            throw CLIError("leader election needs --retry-period < --renew-deadline < --lease-duration")
        }
        if lease.components.attoseconds != 0 {
            throw CLIError("--lease-duration must be whole seconds (the Lease stores leaseDurationSeconds)")
        }
        let format = logFormat
        let level = Logger.Level(rawValue: logLevel) ?? .info
        var logger = Logger(label: "dynsecret.controller") { label in
            switch format {
            case .json: JSONLogHandler(label: label)
            case .text: StreamLogHandler.standardError(label: label)
            }
        }
        logger.logLevel = level

        // Everything that can be wrong in the configuration fails before any request: the keyring and store here,
        // the policy first thing in `Controller.run` (a `ControllerError`, exit 2).
        var atRest: AtRestStore?
        var ring: Keyring?
        if let store, let keyring {
            do { ring = try Keyring.loadMounted(path: keyring) } catch { throw CLIError(error.message) }
            do { atRest = try AtRestStore.open(store, create: true) } catch { throw CLIError(error.message) }
        }
        let metrics = ControllerMetrics()
        let client: KubeClient
        do {
            let config = try KubeConfigLoader.load(kubeconfigPath: connection.kubeconfig, context: connection.context, namespace: nil, environment: env)
            client = KubeClient(config: config, maxConcurrentRequests: maxRequests, rateLimit: rateLimit, observer: metrics.observer)
        } catch {
            throw CLIError("cluster configuration: \(error.message)")
        }
        logger.info("kubernetes client", metadata: ["max-requests": "\(maxRequests)",
                                                    "rate-limit": "\(rateLimit.map { "qps \($0.qps), burst \($0.burst)" } ?? "none (API Priority and Fairness)")"])
        let identity = (env["POD_NAME"] ?? ProcessInfo.processInfo.hostName) + "_" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        var cfg = ControllerConfiguration(policyPath: policy, identity: identity)
        cfg.policyPollInterval = try Self.duration(policyPoll, "--policy-poll")
        cfg.replicator.workers = workers
        cfg.replicator.resync = try Self.duration(resync, "--resync")
        cfg.replicator.clusterName = clusterName
        cfg.replicator.memberKubeconfig = memberKubeconfig
        cfg.healthAddress = try Self.address(healthAddr, "--health-addr")
        cfg.metricsAddress = try Self.address(metricsAddr, "--metrics-addr")
        cfg.store = atRest
        cfg.keyring = ring
        if leaderElect {
            let ns = leaderElectionNamespace ?? env["POD_NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 } ?? client.config.namespace
            if let problem = KubeNames.dns1123LabelProblems(ns).first {
                throw CLIError("--leader-election-namespace: \(KubeNames.goQuote(ns)): \(problem)")
            }
            if let problem = KubeNames.dns1123SubdomainProblems(leaderElectionID).first {
                throw CLIError("--leader-election-id: \(KubeNames.goQuote(leaderElectionID)): \(problem)")
            }
            var le = LeaderElector.Configuration(namespace: ns, name: leaderElectionID, identity: identity)
            le.leaseDuration = lease
            le.renewDeadline = renew
            le.retryPeriod = retry
            cfg.leaderElection = le
        }
        let controller = Controller(client: client, configuration: cfg, metrics: metrics, logger: logger)
        let group = ServiceGroup(services: [controller], gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        do {
            try await group.run()
        } catch let error as ControllerError {
            throw CLIError(error.message, exitCode: error.leadershipLost ? ExitStatus.findings : ExitStatus.usage)
        } catch {
            throw CLIError("controller: \(error)", exitCode: ExitStatus.findings)
        }
    }

    /// `host:port`, `:port` (all interfaces) or `off`.
    static func address(_ text: String, _ flag: String) throws(CLIError) -> (host: String, port: Int)? {
        if text == "off" { return nil }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw CLIError("\(flag): expected HOST:PORT, :PORT or off")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    /// A Go-style duration: `500ms`, `2s`, `10m`, `1h`, `1m30s`.
    static func duration(_ text: String, _ flag: String) throws(CLIError) -> Duration {
        guard let d = GoDuration.parse(text) else {
            throw CLIError("\(flag): invalid duration \(text) (expected e.g. 500ms, 2s, 10m, 1h; at most 292 years)")
        }
        return d
    }
}
