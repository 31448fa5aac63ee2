internal import Prometheus
internal import Synchronization

/// The webhook's Prometheus metrics: reviews by kind and result, review latency, certificate reloads, cache state.
/// Labels are kinds and fixed words, never names or values from the reviewed objects.
public final class WebhookMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let duration: DurationHistogram
    private let reloads: [String: Counter]
    private let synced: Gauge
    private let expiry: Gauge
    private let requests = Mutex<[String: Counter]>([:])

    /// `result` label values.
    public static let results = ["allowed", "warned", "denied", "skipped", "invalid"]
    static let kinds: Set<String> = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob",
                                     "Secret", "ServiceAccount"]

    public init() {
        let registry = self.registry
        duration = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(namespace: "dynsecret", subsystem: "admission", metricName: "review_duration", unitName: "seconds",
                                             helpText: "Time from the end of an AdmissionReview request to its answer."),
            buckets: [.microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                      .milliseconds(10), .milliseconds(25), .milliseconds(100), .seconds(1)])
        let reloadName = MetricNameDescriptor(namespace: "dynsecret", subsystem: "admission", metricName: "certificate_reloads", unitName: "total",
                                              helpText: "Serving certificate reloads, by result (a failed reload keeps the previous certificate).")
        reloads = Dictionary(uniqueKeysWithValues: ["success", "error"].map { ($0, registry.makeCounter(descriptor: reloadName, labels: [("result", $0)])) })
        synced = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "dynsecret", subsystem: "admission", metricName: "caches_synced", unitName: "",
                                                                     helpText: "1 once the pull-secret, ServiceAccount and Namespace caches have synced."))
        expiry = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "dynsecret", subsystem: "admission", metricName: "certificate_expiry_timestamp",
                                                                     unitName: "seconds", helpText: "End of validity of the serving certificate in use (Unix time)."))
    }

    private static var requestName: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "dynsecret", subsystem: "admission", metricName: "requests", unitName: "total",
                                                          helpText: "AdmissionReview requests by kind and result.")
    }

    /// Counts one review.
    public func reviewed(kind: String, result: String, duration d: Duration) {
        let k = Self.kinds.contains(kind) ? kind : (kind.isEmpty ? "none" : "other")
        let key = k + "/" + result
        let counter = requests.withLock { held in
            if let c = held[key] { return c }
            let c = registry.makeCounter(descriptor: Self.requestName, labels: [("kind", k), ("result", result)])
            held[key] = c
            return c
        }
        counter.increment()
        duration.record(d)
    }

    public func certificateReloaded(success: Bool) { reloads[success ? "success" : "error"]?.increment() }
    public func setSynced(_ s: Bool) { synced.set(s ? 1.0 : 0.0) }
    func setCertificateExpiry(_ notAfter: Int64) { expiry.set(Double(notAfter)) }

    /// The Prometheus text exposition.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}
