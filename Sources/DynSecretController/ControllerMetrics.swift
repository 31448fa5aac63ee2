public import DynSecretCore
public import DynSecretKube
internal import Prometheus
internal import Synchronization

/// The controller's Prometheus metrics (names and meaning in `docs/controller.md`). Label values are fixed words,
/// verbs, HTTP codes and policy/rule names: never a Secret's data.
public final class ControllerMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let reconcileDuration: DurationHistogram
    private let leader: Gauge
    private let queueDepth: Gauge
    private let storeRecords: Gauge
    private let ready: Gauge
    private let authFailures: Gauge
    private let lastWrite: Gauge
    /// `dynsecret_replicas{cluster,state}`, by cluster then state, made when a cluster first reports.
    private let replicaGauges = Mutex<[String: [String: Gauge]]>([:])
    private let clusterGauges = Mutex<[String: (up: Gauge, lastSync: Gauge)]>([:])
    // Counters with a fixed label set are made once (they show at 0 from the start); API requests are by verb
    // and code, made on first use.
    private let reconciles: [String: Counter]
    private let writes: [String: Counter]
    private let policyReloads: [String: Counter]
    private let policyErrors: Counter
    private let conflicts: Counter
    private let storeWrites: [String: Counter]
    /// Replica states by (cluster, namespace) and their running totals per cluster (`dynsecret_replicas{cluster,state}`).
    private let replicaStates = Mutex<(byNamespace: [ReplicationKey: [String: Int]], totals: [String: [String: Int]])>(([:], [:]))

    /// The states `dynsecret_replicas` reports.
    public static let replicaStateNames = ["in_sync", "conflict", "failed"]

    public init() {
        let registry = self.registry
        func counters(_ n: String, _ help: String, _ label: String, _ values: [String]) -> [String: Counter] {
            Dictionary(uniqueKeysWithValues: values.map { ($0, registry.makeCounter(descriptor: Self.name(n, help), labels: [(label, $0)])) })
        }
        reconcileDuration = registry.makeDurationHistogram(
            descriptor: Self.name("reconcile_duration_seconds", "Time one reconcile of a target namespace took."),
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                      .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10)]
        )
        leader = registry.makeGauge(descriptor: Self.name("leader", "1 while this process holds the leader Lease, else 0."))
        queueDepth = registry.makeGauge(descriptor: Self.name("workqueue_depth", "Target namespaces waiting to be reconciled."))
        storeRecords = registry.makeGauge(descriptor: Self.name("store_records", "Encrypted at-rest records in the store directory."))
        ready = registry.makeGauge(descriptor: Self.name("ready", "1 when the caches are synced and the API server answers and accepts the controller's credentials."))
        authFailures = registry.makeGauge(descriptor: Self.name(
            "api_auth_failures_consecutive", "401 and 403 answers to the controller's requests since the last successful one."))
        lastWrite = registry.makeGauge(descriptor: Self.name(
            "last_successful_write_timestamp_seconds", "Unix time of the last write the API server accepted (0: none yet)."))
        reconciles = counters("reconciles_total", "Reconciles of a target namespace, by result.", "result", ["success", "error"])
        writes = counters("writes_total", "Writes applied to the cluster, by kind.", "kind",
                          ReplicationAction.Kind.allCases.filter { $0 != .report }.map(\.rawValue))
        policyReloads = counters("policy_reloads_total", "Policy file loads, by result.", "result", ["success", "error"])
        policyErrors = registry.makeCounter(descriptor: Self.name("policy_errors_total", "Invalid policy files seen (the previous policy stays in force)."))
        conflicts = registry.makeCounter(descriptor: Self.name(
            "conflicts_total", "Conflicts reported with an Event: targets held by a Secret dynsecret does not own, or claimed twice."))
        storeWrites = counters("store_writes_total", "At-rest record writes, by result.", "result", ["written", "error"])
    }

    private func gauges(cluster: String) -> [String: Gauge] {
        replicaGauges.withLock { all in
            if let g = all[cluster] { return g }
            var g: [String: Gauge] = [:]
            for s in Self.replicaStateNames {
                g[s] = registry.makeGauge(descriptor: Self.name("replicas", "Replicas by cluster and state after the last reconcile of each target namespace."),
                                          labels: [("cluster", cluster), ("state", s)])
            }
            all[cluster] = g
            return g
        }
    }

    private func clusterGauge(_ cluster: String) -> (up: Gauge, lastSync: Gauge) {
        clusterGauges.withLock { all in
            if let g = all[cluster] { return g }
            let g = (registry.makeGauge(descriptor: Self.name("cluster_up", "1 while the cluster's caches are synced and its API server answers, else 0."), labels: [("cluster", cluster)]),
                     registry.makeGauge(descriptor: Self.name("cluster_last_sync_timestamp_seconds", "Unix time of the last reconcile in the cluster that succeeded (0: none yet)."),
                                        labels: [("cluster", cluster)]))
            all[cluster] = g
            return g
        }
    }

    private let credentialGauges = Mutex<[String: (expiry: Gauge, lastSuccess: Gauge, ok: Counter, error: Counter)]>([:])

    private func credential(_ name: String) -> (expiry: Gauge, lastSuccess: Gauge, ok: Counter, error: Counter) {
        credentialGauges.withLock { all in
            if let g = all[name] { return g }
            let g = (registry.makeGauge(descriptor: Self.name("credential_expiry_timestamp_seconds", "Unix time the credential in use expires."), labels: [("credential", name)]),
                     registry.makeGauge(descriptor: Self.name("credential_last_success_timestamp_seconds", "Unix time of the credential's last successful mint (0: none yet)."),
                                        labels: [("credential", name)]),
                     registry.makeCounter(descriptor: Self.name("credential_refresh_total", "Mints of a credential, by result."), labels: [("credential", name), ("result", "success")]),
                     registry.makeCounter(descriptor: Self.name("credential_refresh_total", "Mints of a credential, by result."), labels: [("credential", name), ("result", "error")]))
            all[name] = g
            return g
        }
    }

    /// Makes a credential's series (at 0) so they show before its first mint.
    public func register(credential name: String) { _ = credential(name) }

    /// A mint of credential `name` ended: on success, the token in use now expires at `expiry` (Unix time).
    public func minted(_ name: String, success: Bool, at now: Double, expiry: Double?) {
        let g = credential(name)
        if success {
            g.ok.increment()
            g.lastSuccess.set(now)
            if let expiry { g.expiry.set(expiry) }
        } else {
            g.error.increment()
        }
    }

    /// Makes the per-cluster series of `cluster` (at 0) so they show before its first reconcile.
    public func register(cluster: String) {
        _ = gauges(cluster: cluster)
        _ = clusterGauge(cluster)
    }

    /// Whether `cluster` is up: its caches synced and its API server answering.
    public func setClusterUp(_ cluster: String, _ up: Bool) { clusterGauge(cluster).up.set(up ? 1.0 : 0.0) }

    /// A reconcile in `cluster` succeeded now.
    public func synced(cluster: String, at unixTime: Double) { clusterGauge(cluster).lastSync.set(unixTime) }

    private static func name(_ n: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "dynsecret", metricName: n, unitName: "", helpText: help)
    }

    /// One reconcile ended (`success` false: a write failed) after `duration`.
    public func reconciled(success: Bool, duration: Duration) {
        reconciles[success ? "success" : "error"]?.increment()
        reconcileDuration.record(duration)
    }

    /// How the API server answers (readiness, the failure log).
    public let health = APIHealth()
    /// API request counters by `verb code`, made on first use and then held (a registry lookup per request, with its
    /// label formatting, was a measurable part of the controller's CPU at scale).
    private let apiCounters = Mutex<[String: Counter]>([:])

    /// A `KubeClient` observer for the hub's client: counts requests by verb and code and keeps `health` current.
    public var observer: @Sendable (APIAnswer) -> Void {
        { [weak self] answer in
            self?.apiRequest(cluster: ReplicationKey.localCluster, verb: answer.method, code: answer.status)
            self?.health.record(answer)
        }
    }

    /// An observer for a member cluster's client: counts its requests (the hub's health is the hub's alone).
    public func observer(cluster: String) -> @Sendable (APIAnswer) -> Void {
        { [weak self] answer in self?.apiRequest(cluster: cluster, verb: answer.method, code: answer.status) }
    }

    /// One API request to `cluster` answered with `code` (0 when no answer came).
    public func apiRequest(cluster: String = ReplicationKey.localCluster, verb: String, code: Int) {
        let key = cluster + " " + verb + " " + String(code)
        let counter = apiCounters.withLock { held in
            if let c = held[key] { return c }
            let c = registry.makeCounter(descriptor: Self.name("api_requests_total", "Kubernetes API requests by cluster, HTTP verb and status code (code 0: no answer)."),
                                         labels: [("cluster", cluster), ("verb", verb), ("code", String(code))])
            held[key] = c
            return c
        }
        counter.increment()
    }

    /// `count` writes of `kind` the controller made (`create`, `update`, `delete`, `patch-serviceaccount`).
    public func wrote(_ kind: ReplicationAction.Kind, count: Int = 1) {
        writes[kind.rawValue]?.increment(by: Int64(count))
    }

    /// A new conflict was reported with an Event (a foreign Secret at a target name, two rules on one target, a
    /// source as a target); a lasting conflict counts once per 30 minutes.
    public func conflict() { conflicts.increment() }

    /// A policy (re)load succeeded, or a changed policy file was invalid (the running policy stays).
    public func policyLoaded(valid: Bool) {
        policyReloads[valid ? "success" : "error"]?.increment()
        if !valid { policyErrors.increment() }
    }

    /// An at-rest record was written, or writing it failed.
    public func storeWrite(succeeded: Bool) { storeWrites[succeeded ? "written" : "error"]?.increment() }

    public func setStoreRecords(_ n: Int) { storeRecords.set(Double(n)) }
    public func setLeader(_ leading: Bool) { leader.set(leading ? 1.0 : 0.0) }
    /// Sets the namespaces waiting in `cluster`'s queue; `dynsecret_workqueue_depth` is the sum over clusters.
    public func setQueueDepth(_ n: Int, cluster: String = ReplicationKey.localCluster) {
        let total = queueDepths.withLock { d -> Int in
            d[cluster] = n
            return d.values.reduce(0, +)
        }
        queueDepth.set(Double(total))
    }
    private let queueDepths = Mutex<[String: Int]>([:])
    public func setReady(_ r: Bool) {
        ready.set(r ? 1.0 : 0.0)
        authFailures.set(Double(health.consecutiveAuthFailures))
        lastWrite.set(health.lastSuccessfulWrite ?? 0)
    }

    /// Replaces the replica states counted for the namespace `key` (nil: the namespace is gone).
    public func setReplicaStates(_ key: ReplicationKey, _ states: [String: Int]?) {
        let totals = replicaStates.withLock { all -> [String: Int] in
            for (k, v) in all.byNamespace[key] ?? [:] { all.totals[key.cluster, default: [:]][k, default: 0] -= v }
            for (k, v) in states ?? [:] { all.totals[key.cluster, default: [:]][k, default: 0] += v }
            all.byNamespace[key] = states
            return all.totals[key.cluster] ?? [:]
        }
        for (s, g) in gauges(cluster: key.cluster) { g.set(Double(totals[s] ?? 0)) }
    }

    /// The Prometheus text exposition (format 0.0.4).
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}
