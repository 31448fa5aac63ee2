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
    private let replicaGauges: [String: Gauge]
    /// Replica states by namespace and their running totals (`dynsecret_replicas{state}`).
    private let replicaStates = Mutex<(byNamespace: [String: [String: Int]], totals: [String: Int])>(([:], [:]))

    /// The states `dynsecret_replicas` reports.
    public static let replicaStateNames = ["in_sync", "conflict", "failed"]

    public init() {
        reconcileDuration = registry.makeDurationHistogram(
            descriptor: Self.name("reconcile_duration_seconds", "Time one reconcile of a target namespace took."),
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                      .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10)]
        )
        leader = registry.makeGauge(descriptor: Self.name("leader", "1 while this process holds the leader Lease, else 0."))
        queueDepth = registry.makeGauge(descriptor: Self.name("workqueue_depth", "Target namespaces waiting to be reconciled."))
        storeRecords = registry.makeGauge(descriptor: Self.name("store_records", "Encrypted at-rest records in the store directory."))
        ready = registry.makeGauge(descriptor: Self.name("ready", "1 when the caches are synced and the API server answers."))
        var g: [String: Gauge] = [:]
        for s in Self.replicaStateNames {
            g[s] = registry.makeGauge(descriptor: Self.name("replicas", "Replicas by state after the last reconcile of each target namespace."), labels: [("state", s)])
        }
        replicaGauges = g
        for r in ["success", "error"] { reconciled(r, duration: nil) }
        policyReloaded("success", count: false)
        policyReloaded("error", count: false)
    }

    private static func name(_ n: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "dynsecret", metricName: n, unitName: "", helpText: help)
    }

    private func counter(_ n: String, _ help: String, _ labels: [(String, String)]) -> Counter {
        registry.makeCounter(descriptor: Self.name(n, help), labels: labels)
    }

    /// One reconcile ended with `result` (`success` or `error`).
    public func reconciled(_ result: String, duration: Duration?) {
        let c = counter("reconciles_total", "Reconciles of a target namespace, by result.", [("result", result)])
        guard let duration else { return }
        c.increment()
        reconcileDuration.record(duration)
    }

    private let lastAPIAnswer = Mutex<ContinuousClock.Instant?>(nil)

    /// A `KubeClient` observer that counts requests by verb and code and notes when the API server last answered.
    public var observer: @Sendable (_ method: String, _ status: Int) -> Void {
        { [weak self] method, status in self?.apiRequest(verb: method, code: status) }
    }

    /// When the API server last answered below 500 (readiness: it is reachable).
    public var lastAPISuccess: ContinuousClock.Instant? { lastAPIAnswer.withLock { $0 } }

    /// One API request answered with `code` (0 when no answer came).
    public func apiRequest(verb: String, code: Int) {
        if code > 0 && code < 500 { lastAPIAnswer.withLock { $0 = .now } }
        counter("api_requests_total", "Kubernetes API requests by HTTP verb and status code (code 0: no answer).",
                [("verb", verb), ("code", String(code))]).increment()
    }

    /// A write the controller made (`create`, `update`, `delete`, `patch-serviceaccount`).
    public func wrote(_ kind: String) {
        counter("writes_total", "Writes applied to the cluster, by kind.", [("kind", kind)]).increment()
    }

    /// A new conflict was reported with an Event (a foreign Secret at a target name, two rules on one target, a
    /// source as a target); a lasting conflict counts once per 30 minutes.
    public func conflict() {
        counter("conflicts_total", "Conflicts reported with an Event: targets held by a Secret dynsecret does not own, or claimed twice.", []).increment()
    }

    /// A policy (re)load ended with `result`.
    public func policyReloaded(_ result: String, count: Bool = true) {
        let c = counter("policy_reloads_total", "Policy file loads, by result.", [("result", result)])
        if count { c.increment() }
        if result == "error" && count {
            counter("policy_errors_total", "Invalid policy files seen (the previous policy stays in force).", []).increment()
        } else if !count {
            _ = counter("policy_errors_total", "Invalid policy files seen (the previous policy stays in force).", [])
        }
    }

    /// An at-rest record was written (`written`) or failed (`error`).
    public func storeWrite(_ result: String) {
        counter("store_writes_total", "At-rest record writes, by result.", [("result", result)]).increment()
    }

    public func setStoreRecords(_ n: Int) { storeRecords.set(Double(n)) }
    public func setLeader(_ leading: Bool) { leader.set(leading ? 1.0 : 0.0) }
    public func setQueueDepth(_ n: Int) { queueDepth.set(Double(n)) }
    public func setReady(_ r: Bool) { ready.set(r ? 1.0 : 0.0) }

    /// Replaces the replica states counted for `namespace` (nil: the namespace is gone).
    public func setReplicaStates(namespace: String, _ states: [String: Int]?) {
        let totals = replicaStates.withLock { all -> [String: Int] in
            for (k, v) in all.byNamespace[namespace] ?? [:] { all.totals[k, default: 0] -= v }
            for (k, v) in states ?? [:] { all.totals[k, default: 0] += v }
            all.byNamespace[namespace] = states
            return all.totals
        }
        for (s, g) in replicaGauges { g.set(Double(totals[s] ?? 0)) }
    }

    /// The Prometheus text exposition (format 0.0.4).
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}
