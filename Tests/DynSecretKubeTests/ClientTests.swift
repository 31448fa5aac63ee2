import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Synchronization
import Testing

let adminToken = "admin-token-for-tests"
let readerToken = "reader-token-for-tests"

/// Starts an emulator over plain HTTP with an admin and a read-only token.
func startEmulator(_ configure: (inout EmulatorOptions) -> Void = { _ in }) async throws -> KubeEmulator {
    var options = EmulatorOptions()
    options.tokens = [TokenGrant(token: adminToken, user: "admin"), TokenGrant(token: readerToken, user: "reader", verbs: ["get", "list", "watch"])]
    configure(&options)
    return try await KubeEmulator.start(options)
}

func client(_ e: KubeEmulator, token: String? = adminToken, retry: RetryPolicy = RetryPolicy(), concurrency: Int = 8) -> KubeClient {
    KubeClient(config: KubeConfig(server: e.url, credentials: token.map { .token($0) } ?? .none), maxConcurrentRequests: concurrency, retry: retry)
}

func secret(_ name: String, namespace: String = "default", data: [String: String] = ["k": "v"], labels: [String: String] = [:]) -> JSONValue {
    var meta = JSONObject([("name", .string(name)), ("namespace", .string(namespace))])
    if !labels.isEmpty {
        meta["labels"] = .object(JSONObject(labels.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))
    }
    let d = JSONObject(data.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string(Base64.encode(Array($0.value.utf8)))) })
    return .object(JSONObject([("apiVersion", .string("v1")), ("kind", .string("Secret")), ("metadata", .object(meta)), ("type", .string("Opaque")), ("data", .object(d))]))
}

/// Runs `body` over 0..<count with at most `width` tasks at a time.
func bounded(_ count: Int, width: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = 0
        while next < min(width, count) {
            let i = next
            group.addTask { try await body(i) }
            next += 1
        }
        while try await group.next() != nil {
            if next < count {
                let i = next
                group.addTask { try await body(i) }
                next += 1
            }
        }
    }
}

@Suite(.serialized) struct ClientTests {
    @Test func crudAndStaleUpdateConflict() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        let created = try await c.create(.secrets, secret("db"))
        let rv = try #require(created["metadata"]?["resourceVersion"]?.stringValue)
        #expect(created["metadata"]?["uid"]?.stringValue?.isEmpty == false)

        var changed = created.objectValue!
        changed["data"] = .object(JSONObject([("k", .string(Base64.encode(Array("v2".utf8))))]))
        let updated = try await c.update(.secrets, .object(changed))
        let rv2 = try #require(updated["metadata"]?["resourceVersion"]?.stringValue)
        #expect(rv2 != rv)

        // The same stale object again: 409 Conflict with the API server's Status.
        do {
            _ = try await c.update(.secrets, .object(changed))
            Issue.record("stale update succeeded")
        } catch {
            #expect(error.httpStatus == 409)
            #expect(error.reason == "Conflict")
            #expect(error.status?.message == "Operation cannot be fulfilled on secrets \"db\": the object has been modified; please apply your changes to the latest version and try again")
        }
        do {
            _ = try await c.create(.secrets, secret("db"))
            Issue.record("duplicate create succeeded")
        } catch {
            #expect(error.reason == "AlreadyExists")
            #expect(error.message == "secrets \"db\" already exists")
        }

        let patched = try await c.mergePatch(.secrets, name: "db", .object(JSONObject([("metadata", .object(JSONObject([("labels", .object(JSONObject([("a", .string("b"))])))])))])))
        #expect(patched["metadata"]?["labels"]?["a"]?.stringValue == "b")

        // Delete with a stale precondition is refused; with the current one it goes through.
        do {
            try await c.delete(.secrets, name: "db", preconditions: DeletePreconditions(resourceVersion: rv))
            Issue.record("delete with stale precondition succeeded")
        } catch {
            #expect(error.reason == "Conflict")
            #expect(error.message.contains("Precondition failed: ResourceVersion in precondition: \(rv)"))
        }
        let current = try await c.get(.secrets, name: "db")
        try await c.delete(.secrets, name: "db", preconditions: DeletePreconditions(uid: current["metadata"]?["uid"]?.stringValue,
                                                                                      resourceVersion: current["metadata"]?["resourceVersion"]?.stringValue))
        do {
            _ = try await c.get(.secrets, name: "db")
            Issue.record("deleted secret still there")
        } catch {
            #expect(error.httpStatus == 404)
            #expect(error.reason == "NotFound")
        }
    }

    @Test func invalidSecretGives422WithCauses() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        var s = secret("reg").objectValue!
        s["type"] = .string("kubernetes.io/dockerconfigjson")
        do {
            _ = try await c.create(.secrets, .object(s))
            Issue.record("invalid secret accepted")
        } catch {
            #expect(error.httpStatus == 422)
            #expect(error.reason == "Invalid")
            #expect(error.message == "Secret \"reg\" is invalid: data[.dockerconfigjson]: Required value")
            #expect(error.status?.causes.map(\.field) == ["data[.dockerconfigjson]"])
            #expect(error.status?.causes.map(\.message) == ["Required value"])
        }
    }

    @Test func unauthorizedAndForbiddenAreReportedClearly() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        do {
            _ = try await client(e, token: "wrong").list(.secrets, namespace: "default")
            Issue.record("wrong token accepted")
        } catch {
            #expect(error.httpStatus == 401)
            #expect(error.reason == "Unauthorized")
            #expect(error.message == "Unauthorized")
        }
        let reader = client(e, token: readerToken)
        _ = try await reader.list(.secrets, namespace: "default")
        do {
            _ = try await reader.create(.secrets, secret("x"))
            Issue.record("reader could create")
        } catch {
            #expect(error.httpStatus == 403)
            #expect(error.reason == "Forbidden")
            #expect(error.message == "secrets is forbidden: User \"reader\" cannot create resource \"secrets\" in API group \"\" in the namespace \"default\"")
        }
    }

    @Test func pagingOver5000Objects() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        try await bounded(5000, width: 16) { i in
            _ = try await c.create(.secrets, secret(String(format: "s-%05d", i), labels: ["half": i % 2 == 0 ? "even" : "odd"]))
        }
        e.resetCounters()
        let all = try await c.listAll(.secrets, namespace: "default", pageSize: 500)
        #expect(all.items.count == 5000)
        let names = all.items.compactMap { $0["metadata"]?["name"]?.stringValue }
        #expect(Set(names).count == 5000)
        #expect(names == names.sorted())
        #expect(e.counters()["list"] == 10)
        #expect(all.items.first?["kind"]?.stringValue == "Secret")
        let even = try await c.listAll(.secrets, namespace: "default", options: ListOptions(labelSelector: "half=even"), pageSize: 700)
        #expect(even.items.count == 2500)
        let one = try await c.list(.secrets, namespace: "default", options: ListOptions(fieldSelector: "metadata.name=s-04999"))
        #expect(one.items.count == 1)
    }

    @Test func throttlingHonoursRetryAfter() async throws {
        let e = try await startEmulator { $0.faults.throttleNext = 2; $0.faults.retryAfterSeconds = 3 }
        defer { Task { await e.stop() } }
        let slept = Mutex<[Duration]>([])
        var retry = RetryPolicy()
        retry.sleep = { d in slept.withLock { $0.append(d) } }
        let c = client(e, retry: retry)
        // A create (not idempotent) is still retried after 429: the server did not process it.
        let created = try await c.create(.secrets, secret("after-429"))
        #expect(created["metadata"]?["name"]?.stringValue == "after-429")
        #expect(slept.withLock { $0 } == [.seconds(3), .seconds(3)])
        #expect(e.counters()["throttled"] == 2)
        #expect(e.counters()["create"] == 1)
        #expect(c.retryCount == 2)
    }

    @Test func serverErrorsRetriedForReadsOnlyNotCreates() async throws {
        let e = try await startEmulator { $0.faults.errorRate = 1.0 }
        defer { Task { await e.stop() } }
        var retry = RetryPolicy()
        retry.maxAttempts = 3
        retry.sleep = { _ in }
        let c = client(e, retry: retry)
        do {
            _ = try await c.create(.secrets, secret("x"))
            Issue.record("create succeeded under injected errors")
        } catch {
            #expect(error.httpStatus == 500)
        }
        #expect(c.retryCount == 0)
        do {
            _ = try await c.get(.secrets, name: "x")
            Issue.record("get succeeded under injected errors")
        } catch {
            #expect(error.httpStatus == 500)
        }
        #expect(c.retryCount == 2)
    }

    @Test func connectionFailureIsAClearError() async throws {
        var retry = RetryPolicy()
        retry.maxAttempts = 2
        retry.sleep = { _ in }
        // A port nothing listens on (bind then close).
        let e = try await startEmulator()
        let url = e.url
        await e.stop()
        let c = KubeClient(config: KubeConfig(server: url), retry: retry)
        do {
            _ = try await c.list(.namespaces)
            Issue.record("request to a closed port succeeded")
        } catch {
            #expect(error.httpStatus == 0)
            #expect(error.message.contains("GET \(url)/api/v1/namespaces"))
        }
        #expect(c.retryCount == 1)
    }

    @Test func connectionReuse() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e, concurrency: 1)
        for i in 0..<50 { _ = try await c.create(.secrets, secret("r\(i)")) }
        #expect(c.transport.statistics.requests == 50)
        #expect(c.transport.statistics.connectionsOpened == 1)
        #expect(e.counters()["connections"] == 1)
    }

    @Test func cancellationEndsAHangingRequest() async throws {
        let e = try await startEmulator { $0.faults.latencyMilliseconds = 10_000 }
        defer { Task { await e.stop() } }
        let c = client(e)
        let start = ContinuousClock.now
        let task = Task { try await c.list(.namespaces) }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        let result = await task.result
        #expect(throws: KubeError.self) { try result.get() }
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}

/// The client-side rate limit (client-go's token bucket): off by default; with one, requests start no faster than it.
@Suite struct RateLimitTests {
    @Test func tokenBucketArithmetic() {
        let t0 = ContinuousClock.now
        var bucket = TokenBucket(RateLimit(qps: 2, burst: 3), now: t0)
        #expect((0..<3).map { _ in bucket.take(now: t0) } == [.zero, .zero, .zero], "a full bucket: the burst goes at once")
        #expect(bucket.take(now: t0) == .milliseconds(500))
        #expect(bucket.take(now: t0) == .seconds(1), "each further request reserves the next token")
        // Two seconds later four tokens came back, two of them already reserved; the bucket never holds more than the burst.
        #expect(bucket.take(now: t0 + .seconds(2)) == .zero)
        #expect(bucket.take(now: t0 + .seconds(2)) == .zero)
        #expect(bucket.take(now: t0 + .seconds(2)) == .milliseconds(500))
        var idle = TokenBucket(RateLimit(qps: 100, burst: 2), now: t0)
        #expect(idle.take(now: t0 + .seconds(60)) == .zero && idle.take(now: t0 + .seconds(60)) == .zero)
        #expect(idle.take(now: t0 + .seconds(60)) == .milliseconds(10))
        #expect(RateLimit(qps: 1, burst: 0).burst == 1)
    }

    @Test func requestsStartNoFasterThanTheLimit() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let limited = KubeClient(config: KubeConfig(server: e.url, credentials: .token(adminToken)), maxConcurrentRequests: 8,
                                 rateLimit: RateLimit(qps: 40, burst: 4))
        #expect(KubeClient(config: KubeConfig(server: e.url)).rateLimit == nil)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<24 { group.addTask { _ = try await limited.list(.namespaces) } }
            try await group.waitForAll()
        }
        // 4 at once, then 20 more at 40 per second: at least half a second, however fast the server is.
        #expect(ContinuousClock.now - start >= .milliseconds(500))
        #expect(e.counters()["list", default: 0] >= 24)
    }
}
