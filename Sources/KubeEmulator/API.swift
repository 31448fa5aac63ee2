internal import DynSecretCore
internal import Foundation
internal import Synchronization

/// A request as the router sees it.
struct APIRequest: Sendable {
    var method: String
    var path: String
    var query: [String: String]
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name }?.1
    }
}

/// A complete answer.
struct APIResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    static func json(_ status: Int, _ value: JSONValue, headers: [(String, String)] = []) -> APIResponse {
        APIResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: GoJSONWriter.compact(value) + [0x0A])
    }

    static func error(_ e: APIError) -> APIResponse {
        if e.code == 429 {
            return APIResponse(status: 429, headers: [("Content-Type", "text/plain; charset=utf-8")] + e.headers, body: Array("Too many requests, please try again later.\n".utf8))
        }
        return json(e.code, e.status, headers: e.headers)
    }
}

/// What the router decided.
enum Routed: Sendable {
    case response(APIResponse)
    /// Start a watch: the server streams the frames; `start` registers with the store and returns the watcher id.
    case watch(start: @Sendable (@escaping @Sendable (WatchFrame) -> Void) -> Int?, bookmarks: Bool, timeout: Int?)
    /// Answer after asynchronous work (admission webhooks).
    case deferred(@Sendable () async -> APIResponse)
}

/// Who may do what: a bearer token's user and verbs/resources (nil = all).
public struct TokenGrant: Sendable {
    public var token: String
    public var user: String
    public var verbs: Set<String>?
    public var resources: Set<String>?
    /// RBAC-style rules: when set, a request is allowed when one rule holds both its verb and its resource (and
    /// `verbs`/`resources` are not consulted).
    public var rules: [Rule]?

    /// One RBAC rule: these verbs on these resources (plural names), cluster-wide (a ClusterRole) or, with
    /// `namespaces`, only in those namespaces (a Role bound in each): a request across all namespaces or on a
    /// cluster-scoped kind is then not covered.
    public struct Rule: Sendable, Hashable {
        public var verbs: Set<String>
        public var resources: Set<String>
        public var namespaces: Set<String>?
        public init(verbs: Set<String>, resources: Set<String>, namespaces: Set<String>? = nil) {
            self.verbs = verbs
            self.resources = resources
            self.namespaces = namespaces
        }
    }

    public init(token: String, user: String, verbs: Set<String>? = nil, resources: Set<String>? = nil) {
        self.token = token
        self.user = user
        self.verbs = verbs
        self.resources = resources
    }

    /// A grant holding exactly `rules`, as a ClusterRole and Role bound to the user would.
    public init(token: String, user: String, rules: [Rule]) {
        self.init(token: token, user: user)
        self.rules = rules
    }

    /// Parses `TOKEN`, `USER:TOKEN`, or `USER:TOKEN=VERB,VERB[/RESOURCE,RESOURCE]`.
    public init?(spec: String, index: Int) {
        var rest = Substring(spec)
        var perms: Substring?
        if let eq = rest.firstIndex(of: "=") {
            perms = rest[rest.index(after: eq)...]
            rest = rest[..<eq]
        }
        if let colon = rest.firstIndex(of: ":") {
            user = String(rest[..<colon])
            token = String(rest[rest.index(after: colon)...])
        } else {
            user = "user\(index)"
            token = String(rest)
        }
        guard !token.isEmpty, !user.isEmpty else { return nil }
        if let perms {
            let parts = perms.split(separator: "/", maxSplits: 1)
            verbs = Set((parts.first ?? "").split(separator: ",").map(String.init))
            resources = parts.count > 1 ? Set(parts[1].split(separator: ",").map(String.init)) : nil
        }
    }

    func allows(verb: String, resource: String, namespace: String?) -> Bool {
        if let rules {
            return rules.contains { r in
                r.verbs.contains(verb) && r.resources.contains(resource) && (r.namespaces.map { ns in namespace.map(ns.contains) ?? false } ?? true)
            }
        }
        return (verbs?.contains(verb) ?? true) && (resources?.contains(resource) ?? true)
    }
}

/// Fault injection settings.
public struct Faults: Sendable {
    /// Fraction of API requests answered 500 InternalError.
    public var errorRate: Double = 0
    /// Fraction of API requests answered 429 with `Retry-After: retryAfterSeconds`.
    public var throttleRate: Double = 0
    /// Answer the next N API requests with 429 (deterministic, for tests).
    public var throttleNext: Int = 0
    public var retryAfterSeconds: Int = 1
    /// Added latency per request.
    public var latencyMilliseconds: Int = 0
    /// Close each watch connection after this many events (0 = never).
    public var dropWatchAfterEvents: Int = 0
    /// Fraction of requests whose connection is closed without an answer.
    public var dropConnectionRate: Double = 0

    public init() {}
}

/// Routes API requests to the store: discovery, CRUD, watch, authentication and permissions, counters, faults.
final class Router: Sendable {
    let store: Store
    /// Accepted tokens; they can be revoked and granted while the server runs (`KubeEmulator.revoke`).
    let grants: Mutex<[String: TokenGrant]>
    /// Whether requests authenticate at all (fixed at start: revoking every token does not open the server).
    let authenticating: Bool
    let faults: Mutex<Faults>
    let counters = Mutex<[String: Int]>([:])
    let serverURL: Mutex<String> = Mutex("")
    let webhooks: AdmissionWebhooks

    init(store: Store, grants: [TokenGrant], faults: Faults) {
        self.store = store
        webhooks = AdmissionWebhooks(store: store)
        var g: [String: TokenGrant] = [:]
        for t in grants { g[t.token] = t }
        self.grants = Mutex(g)
        authenticating = !grants.isEmpty
        self.faults = Mutex(faults)
    }

    func count(_ key: String) { counters.withLock { $0[key, default: 0] += 1 } }

    // MARK: entry

    func route(_ r: APIRequest) -> Routed {
        do {
            return try routeThrowing(r)
        } catch {
            return .response(.error(error))
        }
    }

    func routeThrowing(_ r: APIRequest) throws(APIError) -> Routed {
        let segs = r.path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        // Emulator control endpoints (no authentication: loopback test servers only).
        if segs.first == "emulator" { return .response(try control(r, Array(segs.dropFirst()))) }
        if r.path == "/healthz" || r.path == "/readyz" || r.path == "/livez" {
            return .response(APIResponse(status: 200, headers: [("Content-Type", "text/plain")], body: Array("ok".utf8)))
        }
        let user = try authenticate(r)
        switch r.path {
        case "/version":
            return .response(.json(200, .object(JSONObject([
                ("major", .string("1")), ("minor", .string("32")), ("gitVersion", .string("v1.32.0-kube-emulator")),
                ("gitCommit", .string("0000000000000000000000000000000000000000")), ("gitTreeState", .string("clean")),
                ("buildDate", .string("2026-01-01T00:00:00Z")), ("goVersion", .string("go1.23")), ("compiler", .string("gc")),
                ("platform", .string("linux/amd64")),
            ]))))
        case "/api":
            return .response(.json(200, .object(JSONObject([
                ("kind", .string("APIVersions")), ("versions", .array([.string("v1")])),
                ("serverAddressByClientCIDRs", .array([.object(JSONObject([("clientCIDR", .string("0.0.0.0/0")), ("serverAddress", .string(serverURL.withLock { $0 }))]))])),
            ]))))
        case "/apis":
            let groups: [JSONValue] = Kind.groups.map { g in
                let gv = JSONValue.object(JSONObject([("groupVersion", .string("\(g)/v1")), ("version", .string("v1"))]))
                return .object(JSONObject([("name", .string(g)), ("versions", .array([gv])), ("preferredVersion", gv)]))
            }
            return .response(.json(200, .object(JSONObject([("kind", .string("APIGroupList")), ("apiVersion", .string("v1")), ("groups", .array(groups))]))))
        case "/api/v1":
            return .response(.json(200, resourceList("v1", Kind.all.filter { $0.group.isEmpty })))
        case let p where p.hasPrefix("/apis/") && Kind.groups.contains(where: { p == "/apis/\($0)/v1" }):
            let g = String(p.dropFirst("/apis/".count).dropLast("/v1".count))
            return .response(.json(200, resourceList("\(g)/v1", Kind.all.filter { $0.group == g })))
        case let p where p.hasPrefix("/apis/") && Kind.groups.contains(where: { p == "/apis/\($0)" }):
            let g = String(p.dropFirst("/apis/".count))
            let gv = JSONValue.object(JSONObject([("groupVersion", .string("\(g)/v1")), ("version", .string("v1"))]))
            return .response(.json(200, .object(JSONObject([
                ("kind", .string("APIGroup")), ("apiVersion", .string("v1")), ("name", .string(g)), ("versions", .array([gv])), ("preferredVersion", gv),
            ]))))
        case "/openapi/v2":
            // An empty, valid OpenAPI v2 protobuf document: enough for kubectl apply / create -f.
            return .response(APIResponse(status: 200, headers: [("Content-Type", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")], body: []))
        default:
            break
        }
        try injectFaults()
        return try resource(r, segs, user: user)
    }

    func authenticate(_ r: APIRequest) throws(APIError) -> String {
        if !authenticating { return "system:admin" }
        guard let auth = r.header("authorization"), auth.hasPrefix("Bearer "),
              let grant = grants.withLock({ $0[String(auth.dropFirst(7))] }) else {
            count("unauthorized")
            throw APIError.unauthorized
        }
        return grant.user
    }

    func injectFaults() throws(APIError) {
        let f = faults.withLock { f -> Faults in
            let copy = f
            if f.throttleNext > 0 { f.throttleNext -= 1 }
            return copy
        }
        if f.throttleNext > 0 || (f.throttleRate > 0 && Double.random(in: 0..<1) < f.throttleRate) {
            count("throttled")
            throw APIError(code: 429, reason: "TooManyRequests", message: "Too many requests", headers: [("Retry-After", String(f.retryAfterSeconds))])
        }
        if f.errorRate > 0, Double.random(in: 0..<1) < f.errorRate {
            count("injected-errors")
            throw APIError(code: 500, reason: "InternalError", message: "Internal error occurred: injected fault")
        }
    }

    func resourceList(_ gv: String, _ kinds: [Kind]) -> JSONValue {
        let resources: [JSONValue] = kinds.map { k in
            var verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            if k.namespaced { verbs.insert("deletecollection", at: 1) }
            var o = JSONObject([
                ("name", .string(k.plural)), ("singularName", .string(k.singular)), ("namespaced", .bool(k.namespaced)),
                ("kind", .string(k.kind)), ("verbs", .array(verbs.map(JSONValue.string))),
            ])
            if !k.shortNames.isEmpty { o["shortNames"] = .array(k.shortNames.map(JSONValue.string)) }
            return .object(o)
        }
        return .object(JSONObject([("kind", .string("APIResourceList")), ("apiVersion", .string("v1")), ("groupVersion", .string(gv)), ("resources", .array(resources))]))
    }

    // MARK: resources

    func resource(_ r: APIRequest, _ segsIn: [String], user: String) throws(APIError) -> Routed {
        var segs = segsIn[...]
        var group = ""
        if segs.first == "api" {
            guard segs.dropFirst().first == "v1" else { throw notFoundPath() }
            segs = segs.dropFirst(2)
        } else if segs.first == "apis", segs.count >= 3 {
            group = segs[segs.startIndex + 1]
            guard segs[segs.startIndex + 2] == "v1" else { throw notFoundPath() }
            segs = segs.dropFirst(3)
        } else {
            throw notFoundPath()
        }
        var watchPath = false
        if segs.first == "watch" { watchPath = true; segs = segs.dropFirst() }
        var namespace: String?
        if segs.first == "namespaces", segs.count >= 3 {
            // /namespaces/NS/PLURAL[/NAME]
            let second = segs[segs.startIndex + 2]
            if Kind.all.contains(where: { $0.plural == second && $0.namespaced && $0.group == group }) {
                namespace = segs[segs.startIndex + 1]
                segs = segs.dropFirst(2)
            }
        }
        guard let plural = segs.first, let kind = Kind.all.first(where: { $0.plural == plural && $0.group == group }) else { throw notFoundPath() }
        segs = segs.dropFirst()
        let name = segs.first
        if segs.count > 1 {
            // Subresources: only namespace finalize/status are accepted, as plain updates.
            guard kind.kind == "Namespace", ["finalize", "status"].contains(segs[segs.startIndex + 1]) else { throw notFoundPath() }
        }
        if !kind.namespaced { namespace = nil }
        let isWatch = watchPath || r.query["watch"] == "true" || r.query["watch"] == "1"
        let verb: String = switch r.method {
        case "GET": name == nil ? (isWatch ? "watch" : "list") : (isWatch ? "watch" : "get")
        case "POST": "create"
        case "PUT": "update"
        case "PATCH": "patch"
        case "DELETE": name == nil ? "deletecollection" : "delete"
        default: "unknown"
        }
        guard verb != "unknown" else { throw APIError.methodNotAllowed() }
        // Namespaced objects are addressed inside a namespace; only list and watch span all namespaces.
        if kind.namespaced, namespace == nil, !["list", "watch"].contains(verb) { throw notFoundPath() }
        let client = authenticating ? user : "anonymous"
        count(verb)
        count("\(client) \(verb)")
        count("\(verb) \(kind.plural)")
        if let grant = grants.withLock({ $0.values.first { $0.user == user } }), !grant.allows(verb: verb, resource: kind.plural, namespace: kind.namespaced ? namespace : nil) {
            count("\(client) forbidden")
            throw APIError.forbidden(user: user, verb: verb, plural: kind.plural, group: kind.group, namespace: kind.namespaced ? namespace : nil, name: name)
        }
        let dryRun = r.query["dryRun"] == "All"
        switch verb {
        case "get":
            let o = try store.get(kind, namespace: namespace, name: name!)
            if TablePrinter.wantsTable(r.header("accept")) {
                return .response(.json(200, TablePrinter.table(kind, [o], metadata: JSONObject([("resourceVersion", .string(String(store.currentRV)))]), includeObject: r.query["includeObject"])))
            }
            return .response(.json(200, .object(o)))
        case "list":
            let labels = try r.query["labelSelector"].map { (s: String) throws(APIError) in try LabelQuery.request(s) }
            let fields = try r.query["fieldSelector"].map { (s: String) throws(APIError) in try FieldSelector(s, kind: kind) }
            let page = try store.list(kind, namespace: namespace, labels: labels, fields: fields, limit: Int(r.query["limit"] ?? "") ?? 0, continueToken: r.query["continue"])
            var meta = JSONObject([("resourceVersion", .string(String(page.rv)))])
            if let c = page.continueToken { meta["continue"] = .string(c) }
            if let rem = page.remaining { meta["remainingItemCount"] = .number(String(rem)) }
            if TablePrinter.wantsTable(r.header("accept")) {
                return .response(.json(200, TablePrinter.table(kind, page.items, metadata: meta, includeObject: r.query["includeObject"])))
            }
            let items: [JSONValue] = page.items.map { o in
                var i = o
                i["kind"] = nil
                i["apiVersion"] = nil
                return .object(i)
            }
            return .response(.json(200, .object(JSONObject([("kind", .string(kind.kind + "List")), ("apiVersion", .string(kind.apiVersion)), ("metadata", .object(meta)), ("items", .array(items))]))))
        case "watch":
            var labels = try r.query["labelSelector"].map { (s: String) throws(APIError) in try LabelQuery.request(s) }
            var fields = try r.query["fieldSelector"].map { (s: String) throws(APIError) in try FieldSelector(s, kind: kind) }
            if let name {
                fields = try FieldSelector("metadata.name=\(name)", kind: kind)
                _ = labels
            }
            if labels?.requirements.isEmpty == true { labels = nil }
            let rv = r.query["resourceVersion"]
            let store = self.store
            let ns = namespace
            let l = labels
            let f = fields
            let asTable = TablePrinter.wantsTable(r.header("accept"))
            let include = r.query["includeObject"]
            return .watch(start: { rawSend -> Int? in
                let send = asTable ? TablePrinter.tableSender(kind, includeObject: include, rawSend) : rawSend
                return try? store.watch(Watcher(kind: kind, namespace: ns, labels: l, fields: f, send: send), from: rv) ?? nil
            }, bookmarks: r.query["allowWatchBookmarks"] == "true", timeout: Int(r.query["timeoutSeconds"] ?? ""))
        case "create":
            let (obj, warnings) = try decodeBody(r, kind: kind)
            let store = self.store
            let namespace = namespace
            return try admitted(kind, "CREATE", namespace: namespace, dryRun: dryRun, user: user, status: 201, headers: warnings) { (dry: Bool) throws(APIError) in
                (try store.create(kind, namespace: namespace, obj, dryRun: dry), nil)
            }
        case "update":
            let (obj, warnings) = try decodeBody(r, kind: kind)
            if kind.namespaced, let bodyNS = obj["metadata"]?["namespace"]?.stringValue, !bodyNS.isEmpty, bodyNS != namespace {
                throw APIError.badRequest("the namespace of the provided object does not match the namespace sent on the request")
            }
            let store = self.store
            let n = name!
            let namespace = namespace
            return try admitted(kind, "UPDATE", namespace: namespace, dryRun: dryRun, user: user, status: 200, headers: warnings) { (dry: Bool) throws(APIError) in
                let old = try store.get(kind, namespace: namespace, name: n)
                return (try store.update(kind, namespace: namespace, name: n, dryRun: dry) { _ throws(APIError) in obj }, old)
            }
        case "patch":
            let ct = (r.header("content-type") ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            let patch: JSONValue
            do { patch = try JSONParser.parse(r.body) } catch {
                throw APIError.badRequest("error decoding patch: \(error.message)")
            }
            let store = self.store
            let n = name!
            let namespace = namespace
            let strict = r.query["fieldValidation"] == "Strict"
            let patchOne: @Sendable (JSONObject) throws(APIError) -> JSONObject = { (old: JSONObject) throws(APIError) -> JSONObject in
                let result: JSONValue
                switch ct {
                case "application/merge-patch+json": result = Patch.merge(.object(old), patch)
                case "application/strategic-merge-patch+json": result = try Patch.strategic(.object(old), patch)
                case "application/json-patch+json": result = try Patch.json(.object(old), patch)
                default:
                    throw APIError(code: 415, reason: "UnsupportedMediaType", message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json")
                }
                guard var o = result.objectValue else { throw APIError.badRequest("patch result is not an object") }
                // A patch never carries a stale precondition unless it sets one explicitly.
                if patch["metadata"]?["resourceVersion"] == nil, var m = o["metadata"]?.objectValue {
                    m["resourceVersion"] = old["metadata"]?["resourceVersion"]
                    o["metadata"] = .object(m)
                }
                if strict {
                    let unknown = kind.unknownFields(o)
                    if !unknown.isEmpty { throw Router.strictError(kind, unknown) }
                }
                return o
            }
            return try admitted(kind, "UPDATE", namespace: namespace, dryRun: dryRun, user: user, status: 200, headers: []) { (dry: Bool) throws(APIError) in
                let old = try store.get(kind, namespace: namespace, name: n)
                return (try store.update(kind, namespace: namespace, name: n, dryRun: dry, patchOne), old)
            }
        case "delete":
            var uid: String?
            var rv: String?
            if !r.body.isEmpty, let opts = try? JSONParser.parse(r.body) {
                uid = opts["preconditions"]?["uid"]?.stringValue
                rv = opts["preconditions"]?["resourceVersion"]?.stringValue
            }
            let (old, finalize) = try store.delete(kind, namespace: namespace, name: name!, uid: uid, resourceVersion: rv, dryRun: dryRun)
            if finalize {
                let store = self.store
                let n = name!
                Task.detached {
                    try? await Task.sleep(for: .milliseconds(200))
                    store.finalizeNamespace(n)
                }
            }
            if kind.kind == "Namespace" { return .response(.json(200, .object(old))) }
            var details = APIError.details(name: name, group: kind.group, kind: kind.plural)
            details["uid"] = old["metadata"]?["uid"]
            return .response(.json(200, .object(JSONObject([
                ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object(JSONObject())),
                ("status", .string("Success")), ("details", .object(details)),
            ]))))
        case "deletecollection":
            guard kind.namespaced else { throw APIError.methodNotAllowed() }
            let labels = try r.query["labelSelector"].map { (s: String) throws(APIError) in try LabelQuery.request(s) }
            let fields = try r.query["fieldSelector"].map { (s: String) throws(APIError) in try FieldSelector(s, kind: kind) }
            let page = try store.list(kind, namespace: namespace, labels: labels, fields: fields, limit: 0, continueToken: nil)
            var deleted: [JSONValue] = []
            for o in page.items {
                guard let n = o["metadata"]?["name"]?.stringValue else { continue }
                if let (old, _) = try? store.delete(kind, namespace: o["metadata"]?["namespace"]?.stringValue, name: n, uid: nil, resourceVersion: nil, dryRun: dryRun) {
                    var item = old
                    item["kind"] = nil
                    item["apiVersion"] = nil
                    deleted.append(.object(item))
                }
            }
            return .response(.json(200, .object(JSONObject([("kind", .string(kind.kind + "List")), ("apiVersion", .string(kind.apiVersion)),
                                                             ("metadata", .object(JSONObject([("resourceVersion", .string(String(store.currentRV)))]))),
                                                             ("items", .array(deleted))]))))
        default:
            throw APIError.methodNotAllowed()
        }
    }

    func notFoundPath() -> APIError {
        APIError(code: 404, reason: "NotFound", message: "the server could not find the requested resource", details: JSONObject())
    }

    /// A write, run at once when no validating webhook matches it, otherwise after the webhooks allowed its result
    /// (computed first as a dry run, as the API server admits the object it is about to store).
    func admitted(_ kind: Kind, _ operation: String, namespace: String?, dryRun: Bool, user: String, status: Int, headers: [(String, String)],
                  write: @escaping @Sendable (Bool) throws(APIError) -> (JSONObject, JSONObject?)) throws(APIError) -> Routed {
        let probe = AdmissionAttributes(kind: kind, operation: operation, namespace: namespace, name: "", object: JSONObject(), oldObject: nil,
                                        dryRun: dryRun, user: user)
        let hooks = kind.kind == "ValidatingWebhookConfiguration" ? [] : webhooks.matching(probe, objectSelectors: false)
        if hooks.isEmpty {
            return .response(.json(status, .object(try write(dryRun).0), headers: headers))
        }
        let (candidate, old) = try write(true)
        var a = probe
        a.object = candidate
        a.oldObject = old
        a.name = candidate["metadata"]?["name"]?.stringValue ?? ""
        let webhooks = self.webhooks
        let attributes = a
        return .deferred {
            // Selectors are evaluated against the object itself.
            let matching = webhooks.matching(attributes)
            let verdict = await webhooks.admit(attributes, matching)
            if let error = verdict.error {
                var e = error
                e.headers += verdict.warnings
                return .error(e)
            }
            do throws(APIError) {
                return .json(status, .object(try write(dryRun).0), headers: headers + verdict.warnings)
            } catch {
                return .error(error)
            }
        }
    }

    static func strictError(_ kind: Kind, _ unknown: [String]) -> APIError {
        let what = unknown.count == 1 ? "unknown field \(KubeNames.goQuote(unknown[0]))" : unknown.map { "unknown field \(KubeNames.goQuote($0))" }.joined(separator: ", ")
        return APIError.badRequest("\(kind.kind) in version \(KubeNames.goQuote(kind.version)) cannot be handled as a \(kind.kind): strict decoding error: \(what)")
    }

    /// Decodes a JSON or protobuf body; applies field validation (`Strict` rejects unknown fields, `Warn`/default
    /// drops them with a `Warning` header, `Ignore` drops them silently).
    func decodeBody(_ r: APIRequest, kind: Kind) throws(APIError) -> (JSONObject, [(String, String)]) {
        let ct = r.header("content-type") ?? "application/json"
        let value: JSONValue
        if ct.hasPrefix("application/vnd.kubernetes.protobuf") {
            value = try KubeProtobuf.decode(r.body)
        } else {
            do { value = try JSONParser.parse(r.body) } catch {
                throw APIError.badRequest("\(kind.kind) in version \(KubeNames.goQuote(kind.version)) cannot be handled as a \(kind.kind): \(error.message)")
            }
        }
        guard case .object(var o) = value else {
            throw APIError.badRequest("\(kind.kind) in version \(KubeNames.goQuote(kind.version)) cannot be handled as a \(kind.kind): expected an object")
        }
        if let k = o["kind"]?.stringValue, !k.isEmpty, k != kind.kind {
            throw APIError.badRequest("\(kind.kind) in version \(KubeNames.goQuote(kind.version)) cannot be handled as a \(kind.kind): the kind in the data (\(k)) does not match the expected kind (\(kind.kind))")
        }
        if let v = o["apiVersion"]?.stringValue, !v.isEmpty, v != kind.apiVersion {
            throw APIError.badRequest("the API version in the data (\(v)) does not match the expected API version (\(kind.apiVersion))")
        }
        let unknown = kind.unknownFields(o)
        var warnings: [(String, String)] = []
        if !unknown.isEmpty {
            switch r.query["fieldValidation"] ?? "Warn" {
            case "Strict": throw Router.strictError(kind, unknown)
            case "Ignore": break
            default: warnings = unknown.map { ("Warning", "299 - \(KubeNames.goQuote("unknown field \(KubeNames.goQuote($0))"))") }
            }
            for path in unknown {
                if path.hasPrefix("metadata."), var m = o["metadata"]?.objectValue {
                    m[String(path.dropFirst(9))] = nil
                    o["metadata"] = .object(m)
                } else {
                    o[path] = nil
                }
            }
        }
        return (o, warnings)
    }

    // MARK: control endpoints

    func control(_ r: APIRequest, _ segs: [String]) throws(APIError) -> APIResponse {
        switch (r.method, segs.first ?? "") {
        case ("GET", "counters"):
            let snapshot = counters.withLock { $0 }
            var o = JSONObject()
            for k in snapshot.keys.sorted() { o[k] = .number(String(snapshot[k]!)) }
            return .json(200, .object(o))
        case ("DELETE", "counters"):
            counters.withLock { $0 = [:] }
            return .json(200, .object(JSONObject()))
        case ("PUT", "faults"):
            guard let v = try? JSONParser.parse(r.body) else { throw APIError.badRequest("faults: body is not JSON") }
            var f = Faults()
            func num(_ k: String) -> Double? { if case .number(let n)? = v[k] { Double(n) } else { nil } }
            f.errorRate = num("errorRate") ?? 0
            f.throttleRate = num("throttleRate") ?? 0
            f.throttleNext = Int(num("throttleNext") ?? 0)
            f.retryAfterSeconds = Int(num("retryAfterSeconds") ?? 1)
            f.latencyMilliseconds = Int(num("latencyMilliseconds") ?? 0)
            f.dropWatchAfterEvents = Int(num("dropWatchAfterEvents") ?? 0)
            f.dropConnectionRate = num("dropConnectionRate") ?? 0
            faults.withLock { $0 = f }
            return .json(200, .object(JSONObject()))
        case ("POST", "drop-watches"):
            store.closeAllWatches(abrupt: r.query["abrupt"] == "true")
            return .json(200, .object(JSONObject()))
        case ("POST", "compact"):
            store.compact()
            return .json(200, .object(JSONObject([("resourceVersion", .string(String(store.currentRV)))])))
        default:
            throw APIError(code: 404, reason: "NotFound", message: "unknown emulator endpoint")
        }
    }
}
