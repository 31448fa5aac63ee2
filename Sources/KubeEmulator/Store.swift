internal import DynSecretCore
internal import Foundation
internal import Synchronization

/// One frame of a watch stream.
enum WatchFrame: Sendable {
    /// `line`, when set, is the event's JSON line shared by every watcher that gets the same event (encoded once,
    /// by the first to write it, as the API server's watch cache serializes an event once for all its watchers).
    case event(type: String, object: JSONValue, line: EncodedEvent? = nil)
    /// End the stream (server-side close).
    case close
    /// Drop the connection without ending the stream (as a failing network or API server does).
    case drop
}

/// An event's JSON line, encoded once on first use and shared by the watchers it is sent to.
final class EncodedEvent: Sendable {
    private let bytes = Mutex<[UInt8]?>(nil)

    func line(type: String, object: JSONValue) -> [UInt8] {
        bytes.withLock { b in
            if let b { return b }
            let line = GoJSONWriter.compact(.object(JSONObject([("type", .string(type)), ("object", object)]))) + [0x0A]
            b = line
            return line
        }
    }
}

/// A registered watch.
struct Watcher: Sendable {
    var kind: Kind
    var namespace: String?
    var labels: LabelQuery?
    var fields: FieldSelector?
    var send: @Sendable (WatchFrame) -> Void

    func wants(_ o: JSONObject) -> Bool {
        if let namespace, kind.namespaced, o["metadata"]?["namespace"]?.stringValue != namespace { return false }
        if let labels, !labels.matches(o["metadata"]?["labels"]?.objectValue) { return false }
        if let fields, !fields.matches(o, kind: kind) { return false }
        return true
    }
}

/// The emulator's object store: objects by kind, one global resourceVersion counter, a retained window
/// of change events for watches, and the live watchers. All mutation happens under one lock, and watch
/// frames are handed to watchers under that lock, so every watcher sees events in resourceVersion order.
final class Store: Sendable {
    struct Change: Sendable {
        var rv: Int
        var kind: String
        var type: String
        var object: JSONObject
        /// The object before a MODIFIED change (for selector transitions).
        var previous: JSONObject?
    }

    /// The event a watcher with a selector sees for `c`, as the API server's cache watcher converts it: MODIFIED
    /// when both versions match, ADDED when only the new one does, DELETED (with the previous content and the new
    /// resourceVersion) when only the old one does, nothing when neither does.
    static func event(_ c: Change, for w: Watcher) -> (type: String, object: JSONObject)? {
        let now = w.wants(c.object)
        guard c.type == "MODIFIED", let previous = c.previous else { return now ? (c.type, c.object) : nil }
        let before = w.wants(previous)
        switch (before, now) {
        case (true, true): return ("MODIFIED", c.object)
        case (false, true): return ("ADDED", c.object)
        case (true, false):
            var gone = previous
            if var meta = gone["metadata"]?.objectValue {
                meta["resourceVersion"] = c.object["metadata"]?["resourceVersion"]
                gone["metadata"] = .object(meta)
            }
            return ("DELETED", gone)
        case (false, false): return nil
        }
    }

    struct State: Sendable {
        var rv = 1
        var objects: [String: [String: JSONObject]] = [:]
        var log: [Change] = []
        var logStart = 0
        /// Events after this resourceVersion are all retained.
        var compactedThrough = 1
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 1
    }

    let state = Mutex(State())
    let window: Int
    let clock: @Sendable () -> Date

    init(window: Int, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.window = max(16, window)
        self.clock = clock
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            _ = try? create(.namespace, namespace: nil, JSONObject([("apiVersion", .string("v1")), ("kind", .string("Namespace")), ("metadata", .object(JSONObject([("name", .string(ns))])))]))
        }
    }

    static func key(_ namespace: String?, _ name: String) -> String { (namespace ?? "") + "/" + name }

    var currentRV: Int { state.withLock { $0.rv } }

    func timestamp() -> String {
        let f = Date.ISO8601FormatStyle(includingFractionalSeconds: false, timeZone: .gmt)
        return clock().formatted(f)
    }

    // MARK: reads

    func get(_ kind: Kind, namespace: String?, name: String) throws(APIError) -> JSONObject {
        let o = state.withLock { $0.objects[kind.plural]?[Self.key(kind.namespaced ? namespace : nil, name)] }
        guard let o else { throw APIError.notFound(kind.plural, group: kind.group, name: name) }
        return o
    }

    struct Page {
        var items: [JSONObject]
        var rv: Int
        var continueToken: String?
        var remaining: Int?
    }

    func list(_ kind: Kind, namespace: String?, labels: LabelQuery?, fields: FieldSelector?, limit: Int, continueToken: String?) throws(APIError) -> Page {
        var start: String?
        if let continueToken, !continueToken.isEmpty {
            guard let raw = Base64.decode(continueToken), let v = try? JSONParser.parse(raw), let s = v["start"]?.stringValue else {
                throw APIError.badRequest("continue key is not valid: invalid continue token")
            }
            start = s
        }
        let (all, rv): ([(String, JSONObject)], Int) = state.withLock { st in
            let objs = st.objects[kind.plural] ?? [:]
            return (objs.map { ($0.key, $0.value) }, st.rv)
        }
        var matching = all.filter { k, o in
            if let start, k <= start { return false }
            if let namespace, kind.namespaced, o["metadata"]?["namespace"]?.stringValue != namespace { return false }
            if let labels, !labels.matches(o["metadata"]?["labels"]?.objectValue) { return false }
            if let fields, !fields.matches(o, kind: kind) { return false }
            return true
        }
        matching.sort { $0.0 < $1.0 }
        if limit > 0, matching.count > limit {
            let page = matching.prefix(limit)
            let last = page.last!.0
            let token = Base64.encode(GoJSONWriter.compact(.object(JSONObject([("rv", .number(String(rv))), ("start", .string(last))]))))
            return Page(items: page.map(\.1), rv: rv, continueToken: token, remaining: matching.count - limit)
        }
        return Page(items: matching.map(\.1), rv: rv, continueToken: nil, remaining: nil)
    }

    // MARK: writes

    private func record(_ st: inout State, kind: Kind, type: String, object: JSONObject, previous: JSONObject? = nil) {
        let change = Change(rv: st.rv, kind: kind.plural, type: type, object: object, previous: previous)
        st.log.append(change)
        if st.log.count - st.logStart > window {
            let drop = st.log.count - st.logStart - window
            st.compactedThrough = st.log[st.logStart + drop - 1].rv
            st.logStart += drop
            if st.logStart > 4096 {
                st.log.removeFirst(st.logStart)
                st.logStart = 0
            }
        }
        // One event value and one encoding per distinct event type (a selector can turn a MODIFIED into an ADDED or a
        // DELETED for some watchers), shared by the watchers that get it.
        var shared: [String: (object: JSONValue, line: EncodedEvent)] = [:]
        for w in st.watchers.values where w.kind.plural == kind.plural {
            guard let e = Self.event(change, for: w) else { continue }
            let one = shared[e.type] ?? (.object(Self.withType(e.object, kind)), EncodedEvent())
            shared[e.type] = one
            w.send(.event(type: e.type, object: one.object, line: one.line))
        }
    }

    static func withType(_ o: JSONObject, _ kind: Kind) -> JSONObject {
        if o["kind"] != nil { return o }
        var out = JSONObject([("apiVersion", .string(kind.apiVersion)), ("kind", .string(kind.kind))])
        for m in o.members { out[m.key] = m.value }
        return out
    }

    static let generateAlphabet = Array("bcdfghjklmnpqrstvwxz2456789")

    func create(_ kind: Kind, namespace: String?, _ input: JSONObject, dryRun: Bool = false) throws(APIError) -> JSONObject {
        var o = input
        var meta = o["metadata"]?.objectValue ?? JSONObject()
        if (meta["name"]?.stringValue ?? "").isEmpty, let g = meta["generateName"]?.stringValue, !g.isEmpty {
            meta["name"] = .string(g + String((0..<5).map { _ in Self.generateAlphabet.randomElement()! }))
        }
        if kind.namespaced {
            if let bodyNS = meta["namespace"]?.stringValue, !bodyNS.isEmpty, let namespace, bodyNS != namespace {
                throw APIError.badRequest("the namespace of the provided object does not match the namespace sent on the request")
            }
            meta["namespace"] = namespace.map(JSONValue.string)
        } else {
            meta["namespace"] = nil
        }
        for k in ["uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "selfLink"] { meta[k] = nil }
        o["metadata"] = .object(meta)
        o["apiVersion"] = .string(kind.apiVersion)
        o["kind"] = .string(kind.kind)
        kind.applyDefaults(&o)
        let name = o["metadata"]?["name"]?.stringValue ?? ""
        if let e = kind.decodeError(o) { throw e }
        let errors = kind.validate(o, old: nil)
        if !errors.isEmpty { throw APIError.invalid(kind: kind.kind, group: kind.group, name: name, errors: errors) }
        // As the API server's storage layer (a plain error there: 500 with no reason): a create may not name a
        // version. A uid and timestamps are overwritten.
        if let rv = input["metadata"]?["resourceVersion"]?.stringValue, !rv.isEmpty {
            throw APIError(code: 500, reason: "", message: "resourceVersion should not be set on objects to be created")
        }
        let ts = timestamp()
        let uid = UUID().uuidString.lowercased()
        return try state.withLock { st throws(APIError) -> JSONObject in
            if kind.namespaced, let namespace {
                guard let ns = st.objects["namespaces"]?[Self.key(nil, namespace)] else {
                    throw APIError.notFound("namespaces", name: namespace)
                }
                if ns["status"]?["phase"]?.stringValue == "Terminating" {
                    throw APIError(code: 403, reason: "Forbidden",
                                   message: "\(kind.plural) \(KubeNames.goQuote(name)) is forbidden: unable to create new content in namespace \(namespace) because it is being terminated",
                                   details: APIError.details(name: name, group: kind.group, kind: kind.plural))
                }
            }
            let key = Self.key(kind.namespaced ? namespace : nil, name)
            if st.objects[kind.plural]?[key] != nil { throw APIError.alreadyExists(kind.plural, group: kind.group, name: name) }
            var stored = o
            var m = stored["metadata"]?.objectValue ?? JSONObject()
            m["uid"] = .string(uid)
            m["resourceVersion"] = .string(String(st.rv + 1))
            m["creationTimestamp"] = .string(ts)
            stored["metadata"] = .object(Self.orderedMeta(m))
            stored = Self.ordered(stored, kind)
            if dryRun { return stored }
            st.rv += 1
            st.objects[kind.plural, default: [:]][key] = stored
            record(&st, kind: kind, type: "ADDED", object: stored)
            if kind.kind == "Namespace" {
                // Every namespace gets a default ServiceAccount.
                var sa = JSONObject([("apiVersion", .string("v1")), ("kind", .string("ServiceAccount"))])
                st.rv += 1
                sa["metadata"] = .object(JSONObject([("name", .string("default")), ("namespace", .string(name)), ("uid", .string(UUID().uuidString.lowercased())),
                                                     ("resourceVersion", .string(String(st.rv))), ("creationTimestamp", .string(ts))]))
                st.objects["serviceaccounts", default: [:]][Self.key(name, "default")] = sa
                record(&st, kind: .serviceAccount, type: "ADDED", object: sa)
            }
            return stored
        }
    }

    /// Field order as the API server writes it.
    static func ordered(_ oIn: JSONObject, _ kind: Kind) -> JSONObject {
        var o = oIn
        for k in ["data", "binaryData", "imagePullSecrets", "secrets"] where o[k]?.objectValue?.isEmpty == true || o[k]?.arrayValue?.isEmpty == true || o[k] == .null {
            o[k] = nil
        }
        var out = JSONObject()
        for k in ["kind", "apiVersion", "metadata"] { if let v = o[k] { out[k] = v } }
        for m in o.members where out[m.key] == nil { out[m.key] = m.value }
        return out
    }

    static func orderedMeta(_ mIn: JSONObject) -> JSONObject {
        var m = mIn
        // Go's omitempty: empty maps and lists are not stored.
        for k in ["labels", "annotations", "finalizers", "ownerReferences"] {
            if m[k]?.objectValue?.isEmpty == true || m[k]?.arrayValue?.isEmpty == true || m[k] == .null { m[k] = nil }
        }
        var out = JSONObject()
        for k in ["name", "generateName", "namespace", "uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations"] {
            if let v = m[k] { out[k] = v }
        }
        for mm in m.members where out[mm.key] == nil { out[mm.key] = mm.value }
        return out
    }

    /// Replaces an object; `mutate` computes the new object from the current one (update or patch), under the lock.
    func update(_ kind: Kind, namespace: String?, name: String, dryRun: Bool = false,
                _ mutate: (JSONObject) throws(APIError) -> JSONObject) throws(APIError) -> JSONObject {
        try state.withLock { st throws(APIError) -> JSONObject in
            let key = Self.key(kind.namespaced ? namespace : nil, name)
            guard let old = st.objects[kind.plural]?[key] else { throw APIError.notFound(kind.plural, group: kind.group, name: name) }
            var o = try mutate(old)
            var meta = o["metadata"]?.objectValue ?? JSONObject()
            if let n = meta["name"]?.stringValue, n != name {
                throw APIError.badRequest("the name of the object (\(n)) does not match the name on the URL (\(name))")
            }
            if let rv = meta["resourceVersion"]?.stringValue, !rv.isEmpty, rv != old["metadata"]?["resourceVersion"]?.stringValue {
                throw APIError.conflict(kind.plural, group: kind.group, name: name, APIError.staleMessage)
            }
            if let uid = meta["uid"]?.stringValue, !uid.isEmpty, uid != old["metadata"]?["uid"]?.stringValue {
                throw APIError.conflict(kind.plural, group: kind.group, name: name,
                                        "Precondition failed: UID in precondition: \(uid), UID in object meta: \(old["metadata"]?["uid"]?.stringValue ?? "")")
            }
            for k in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "resourceVersion"] { meta[k] = old["metadata"]?[k] }
            o["metadata"] = .object(Self.orderedMeta(meta))
            o["apiVersion"] = .string(kind.apiVersion)
            o["kind"] = .string(kind.kind)
            if kind.kind == "Namespace" {
                o["status"] = old["status"]
                if o["spec"] == nil { o["spec"] = old["spec"] }
            }
            kind.applyDefaults(&o)
            o = Self.ordered(o, kind)
            if let e = kind.decodeError(o) { throw e }
            let errors = kind.validate(o, old: old)
            if !errors.isEmpty { throw APIError.invalid(kind: kind.kind, group: kind.group, name: name, errors: errors) }
            if o == old || (o.asDictionary == old.asDictionary) { return old }  // no change: no new resourceVersion
            if dryRun { return o }
            st.rv += 1
            meta["resourceVersion"] = .string(String(st.rv))
            o["metadata"] = .object(Self.orderedMeta(meta))
            st.objects[kind.plural, default: [:]][key] = o
            record(&st, kind: kind, type: "MODIFIED", object: o, previous: old)
            return o
        }
    }

    /// Deletes an object after checking preconditions. Namespaces go to `Terminating` and are finalized later.
    func delete(_ kind: Kind, namespace: String?, name: String, uid: String?, resourceVersion: String?, dryRun: Bool = false) throws(APIError) -> (JSONObject, finalize: Bool) {
        let ts = timestamp()
        return try state.withLock { st throws(APIError) -> (JSONObject, finalize: Bool) in
            let key = Self.key(kind.namespaced ? namespace : nil, name)
            guard var old = st.objects[kind.plural]?[key] else { throw APIError.notFound(kind.plural, group: kind.group, name: name) }
            let oldUID = old["metadata"]?["uid"]?.stringValue ?? ""
            let oldRV = old["metadata"]?["resourceVersion"]?.stringValue ?? ""
            if let uid, uid != oldUID {
                throw APIError.conflict(kind.plural, group: kind.group, name: name, "Precondition failed: UID in precondition: \(uid), UID in object meta: \(oldUID)")
            }
            if let resourceVersion, resourceVersion != oldRV {
                throw APIError.conflict(kind.plural, group: kind.group, name: name,
                                        "Precondition failed: ResourceVersion in precondition: \(resourceVersion), ResourceVersion in object meta: \(oldRV)")
            }
            if kind.kind == "Namespace" {
                if ["default", "kube-system", "kube-public"].contains(name) {
                    throw APIError(code: 403, reason: "Forbidden", message: "namespaces \(KubeNames.goQuote(name)) is forbidden: this namespace may not be deleted",
                                   details: APIError.details(name: name, kind: "namespaces"))
                }
                if dryRun { return (old, false) }
                if old["status"]?["phase"]?.stringValue == "Terminating" { return (old, false) }
                let before = old
                st.rv += 1
                var meta = old["metadata"]?.objectValue ?? JSONObject()
                meta["deletionTimestamp"] = .string(ts)
                meta["resourceVersion"] = .string(String(st.rv))
                old["metadata"] = .object(Self.orderedMeta(meta))
                old["status"] = .object(JSONObject([("phase", .string("Terminating"))]))
                st.objects["namespaces", default: [:]][key] = old
                record(&st, kind: kind, type: "MODIFIED", object: old, previous: before)
                return (old, true)
            }
            if dryRun { return (old, false) }
            st.rv += 1
            st.objects[kind.plural]?[key] = nil
            var gone = old
            var meta = gone["metadata"]?.objectValue ?? JSONObject()
            meta["resourceVersion"] = .string(String(st.rv))
            gone["metadata"] = .object(meta)
            record(&st, kind: kind, type: "DELETED", object: gone)
            return (old, false)
        }
    }

    /// Removes a terminating namespace and everything in it.
    func finalizeNamespace(_ name: String) {
        state.withLock { st in
            for kind in Kind.all where kind.namespaced {
                let keys = (st.objects[kind.plural] ?? [:]).keys.filter { $0.hasPrefix(name + "/") }.sorted()
                for k in keys {
                    guard var o = st.objects[kind.plural]?[k] else { continue }
                    st.rv += 1
                    st.objects[kind.plural]?[k] = nil
                    var meta = o["metadata"]?.objectValue ?? JSONObject()
                    meta["resourceVersion"] = .string(String(st.rv))
                    o["metadata"] = .object(meta)
                    record(&st, kind: kind, type: "DELETED", object: o)
                }
            }
            let key = Self.key(nil, name)
            if var ns = st.objects["namespaces"]?[key] {
                st.rv += 1
                st.objects["namespaces"]?[key] = nil
                var meta = ns["metadata"]?.objectValue ?? JSONObject()
                meta["resourceVersion"] = .string(String(st.rv))
                ns["metadata"] = .object(meta)
                if case .object(var spec)? = ns["spec"] { spec["finalizers"] = nil; ns["spec"] = .object(spec) }
                record(&st, kind: .namespace, type: "DELETED", object: ns)
            }
        }
    }

    // MARK: watch

    /// Registers a watcher from `resourceVersion` (nil/"0": synthetic ADDED events for the current state first).
    /// Returns the watcher's id; a version older than the retained window yields a 410 Expired `ERROR` frame.
    func watch(_ w: Watcher, from resourceVersion: String?) throws(APIError) -> Int? {
        try state.withLock { st throws(APIError) -> Int? in
            if let rvText = resourceVersion, !rvText.isEmpty, rvText != "0" {
                guard let from = Int(rvText) else { throw APIError.badRequest("invalid resource version \(KubeNames.goQuote(rvText))") }
                if from < st.compactedThrough {
                    let expired = APIError.gone("too old resource version: \(from) (\(st.compactedThrough + 1))")
                    w.send(.event(type: "ERROR", object: expired.status))
                    w.send(.close)
                    return nil
                }
                for c in st.log[st.logStart...] where c.rv > from && c.kind == w.kind.plural {
                    if let e = Self.event(c, for: w) { w.send(.event(type: e.type, object: .object(Self.withType(e.object, w.kind)))) }
                }
            } else {
                let objs = (st.objects[w.kind.plural] ?? [:]).sorted { $0.key < $1.key }
                for (_, o) in objs where w.wants(o) {
                    w.send(.event(type: "ADDED", object: .object(Self.withType(o, w.kind))))
                }
            }
            let id = st.nextWatcher
            st.nextWatcher += 1
            st.watchers[id] = w
            return id
        }
    }

    func unwatch(_ id: Int) { state.withLock { _ = $0.watchers.removeValue(forKey: id) } }

    /// Sends a BOOKMARK with the current resourceVersion to watcher `id`.
    func bookmark(_ id: Int) {
        state.withLock { st in
            guard let w = st.watchers[id] else { return }
            let obj = JSONObject([("kind", .string(w.kind.kind)), ("apiVersion", .string(w.kind.apiVersion)),
                                  ("metadata", .object(JSONObject([("resourceVersion", .string(String(st.rv)))])))])
            w.send(.event(type: "BOOKMARK", object: .object(obj)))
        }
    }

    /// Forgets all retained events, so watches from any earlier version get 410 Expired.
    func compact() {
        state.withLock { st in
            st.compactedThrough = st.rv
            st.log.removeAll()
            st.logStart = 0
        }
    }

    /// Ends every watch: cleanly, or by dropping the connection.
    @discardableResult
    func closeAllWatches(abrupt: Bool = false) -> Int {
        state.withLock { st in
            for w in st.watchers.values { w.send(abrupt ? .drop : .close) }
            defer { st.watchers.removeAll() }
            return st.watchers.count
        }
    }

    var openWatches: Int { state.withLock { $0.watchers.count } }
}
