internal import DynSecretCore
public import DynSecretKube
internal import Foundation
public import Logging
internal import Synchronization

/// Records core/v1 Events on source Secrets. One Event per (object, reason, message) per process: a condition that
/// persists across reconciles is reported once, not on every resync (client-go's recorder aggregates the same way).
/// Messages are built from names and reasons only, never from Secret data.
public final class EventRecorder: Sendable {
    /// The object an Event is about.
    public struct Object: Sendable, Hashable {
        public var kind: String
        public var apiVersion: String
        public var namespace: String
        public var name: String
        public var uid: String?

        public init(kind: String, apiVersion: String, namespace: String, name: String, uid: String?) {
            self.kind = kind
            self.apiVersion = apiVersion
            self.namespace = namespace
            self.name = name
            self.uid = uid
        }
    }

    private let client: KubeClient
    private let component: String
    private let instance: String
    /// The `reportingInstance` of the Events recorded.
    public var instanceName: String { instance }
    private let logger: Logger
    private let recorded = Mutex<[String: ContinuousClock.Instant]>([:])
    private let maxRemembered = 10_000
    /// A lasting condition is recorded again after this long (Events expire from the API server after an hour).
    private let repeatAfter: Duration = .seconds(1800)

    public init(client: KubeClient, component: String = "dynsecret-controller", instance: String, logger: Logger) {
        self.client = client
        self.component = component
        self.instance = instance
        self.logger = logger
    }

    /// Creates the Event unless this process recorded the same one in the last 30 minutes; returns whether it was
    /// created. Failures are logged, never thrown.
    @discardableResult
    public func record(_ object: Object?, type: String, reason: String, message: String) async -> Bool {
        guard let object else { return false }
        let key = "\(object.namespace)/\(object.name)|\(object.uid ?? "")|\(reason)|\(message)"
        let seen = ContinuousClock.now
        let repeatAfter = self.repeatAfter
        let fresh = recorded.withLock { r -> Bool in
            if let at = r[key], seen - at < repeatAfter { return false }
            if r.count >= maxRemembered { r = r.filter { seen - $0.value < repeatAfter } }
            if r.count >= maxRemembered { r.removeAll() }
            r[key] = seen
            return true
        }
        guard fresh else { return false }
        let now = Date()
        let t = now.timeIntervalSince1970
        let secs = Int64(t.rounded(.down))
        let stamp = RFC3339.format(secs)
        var involved = ["kind": object.kind, "apiVersion": object.apiVersion, "namespace": object.namespace, "name": object.name]
        if let uid = object.uid { involved["uid"] = uid }
        let suffix = String(UInt64(secs), radix: 16) + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        var event = Event(metadata: ObjectMeta(name: "\(object.name).\(suffix)", namespace: object.namespace), involvedObject: involved,
                          reason: reason, message: String(message.prefix(1024)), type: type)
        event.count = 1
        event.firstTimestamp = stamp
        event.lastTimestamp = stamp
        event.sourceComponent = component
        event.reportingComponent = component
        event.reportingInstance = instance
        do throws(KubeError) {
            _ = try await client.create(event)
            return true
        } catch {
            recorded.withLock { _ = $0.removeValue(forKey: key) }
            logger.warning("could not record an Event", metadata: ["object": "\(object.namespace)/\(object.name)", "reason": "\(reason)", "error": "\(error.message.prefix(512))"])
            return false
        }
    }
}
