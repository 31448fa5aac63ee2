import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Synchronization
import Testing

/// A clock whose sleeps finish only when the test opens the gate (or immediately while it is open).
final class GateClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by d: Duration) -> Instant { Instant(offset: offset + d) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }

    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>], sleeps: Int, now: Duration)>((true, [], 0, .zero))

    var now: Instant { Instant(offset: state.withLock { $0.now }) }
    var minimumResolution: Duration { .nanoseconds(1) }
    var sleeps: Int { state.withLock { $0.sleeps } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                s.sleeps += 1
                s.now = max(s.now, deadline.offset)
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if resumeNow { c.resume() }
        }
    }

    func close() { state.withLock { $0.open = false } }

    func open() {
        let waiters = state.withLock { s in
            s.open = true
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in waiters { w.resume() }
    }
}

/// Collects informer events on a task.
final class EventBox: Sendable {
    let value = Mutex<[InformerEvent<JSONValue>]>([])
    func withLock<R>(_ body: (inout [InformerEvent<JSONValue>]) -> R) -> R { value.withLock { body(&$0) } }
}

final class Collector: Sendable {
    let events = EventBox()
    let task: Task<Void, Never>

    init(_ stream: AsyncStream<InformerEvent<JSONValue>>) {
        let events = self.events
        task = Task { for await e in stream { events.withLock { $0.append(e) } } }
    }

    var synced: Int { events.withLock { Self.syncs($0) } }

    static func syncs(_ events: [InformerEvent<JSONValue>]) -> Int { events.filter { if case .synced = $0 { true } else { false } }.count }

    /// Waits (bounded) until `condition` holds.
    func wait(seconds: Double = 60, _ condition: @Sendable ([InformerEvent<JSONValue>]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if events.withLock({ condition($0) }) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

func name(_ o: JSONValue) -> String { o["metadata"]?["name"]?.stringValue ?? "" }
func rv(_ o: JSONValue) -> Int { Int(o["metadata"]?["resourceVersion"]?.stringValue ?? "") ?? -1 }

@Suite(.serialized) struct WatchTests {
    @Test func rawWatchDeliversEventsAndBookmarks() async throws {
        let e = try await startEmulator { $0.bookmarkInterval = .milliseconds(100) }
        defer { Task { await e.stop() } }
        let c = client(e)
        _ = try await c.create(.secrets, secret("w0"))
        let list = try await c.list(.secrets, namespace: "default")
        var opts = ListOptions()
        opts.resourceVersion = list.resourceVersion
        opts.allowWatchBookmarks = true
        let stream = c.watch(.secrets, namespace: "default", options: opts)
        let got = Mutex<[WatchEvent]>([])
        let reader = Task { do { for try await ev in stream { got.withLock { $0.append(ev) } } } catch {} }
        _ = try await c.create(.secrets, secret("w1"))
        _ = try await c.mergePatch(.secrets, name: "w1", .object(JSONObject([("data", .object(JSONObject([("k", .string("eA=="))])))])))
        try await c.delete(.secrets, name: "w1")
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, !got.withLock({ evs in evs.contains { $0.type == "BOOKMARK" } && evs.filter { $0.type != "BOOKMARK" }.count >= 3 }) {
            try await Task.sleep(for: .milliseconds(20))
        }
        reader.cancel()
        let events = got.withLock { $0 }
        #expect(events.filter { $0.type != "BOOKMARK" }.map { "\($0.type) \(name($0.object))" } == ["ADDED w1", "MODIFIED w1", "DELETED w1"])
        #expect(events.contains { $0.type == "BOOKMARK" })
    }

    /// `watchLines` hands over each event as its own JSON line, in order, also when the emulator writes a burst of
    /// events in one flush; and `Informer.run` delivers the same changes in the caller's task until it is cancelled.
    @Test func rawLinesAndRunInTheCallersTask() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        let list = try await c.list(.secrets, namespace: "default")
        var opts = ListOptions()
        opts.resourceVersion = list.resourceVersion
        let lines = Mutex<[[UInt8]]>([])
        let reader = Task { do { for try await l in c.watchLines(.secrets, namespace: "default", options: opts) { lines.withLock { $0.append(l) } } } catch {} }
        let seen = Mutex<[String]>([])
        let informer = Informer(client: c, resource: .secrets, namespace: "default")
        let runner = Task {
            await informer.run { event in
                if case .added(let o) = event { seen.withLock { $0.append(name(o)) } }
            }
            seen.withLock { $0.append("ended") }
        }
        try await Task.sleep(for: .milliseconds(200))
        let names = (0..<200).map { "burst-\($0)" }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in names { group.addTask { _ = try await c.create(.secrets, secret(n)) } }
            try await group.waitForAll()
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, lines.withLock({ $0.count }) < names.count || seen.withLock({ $0.count }) < names.count {
            try await Task.sleep(for: .milliseconds(20))
        }
        reader.cancel()
        let got = lines.withLock { $0 }
        #expect(got.count == names.count)
        #expect(!got.contains { $0.contains(0x0A) })
        let parsed = got.compactMap { try? JSONParser.parse($0) }
        #expect(parsed.count == names.count, "every line is one JSON event")
        #expect(Set(parsed.map { name($0["object"] ?? .null) }) == Set(names))
        #expect(parsed.allSatisfy { $0["type"]?.stringValue == "ADDED" })
        #expect(parsed.map { rv($0["object"] ?? .null) } == parsed.map { rv($0["object"] ?? .null) }.sorted(), "in resourceVersion order")
        #expect(Set(seen.withLock { $0 }) == Set(names))
        runner.cancel()
        let end = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < end, !seen.withLock({ $0.contains("ended") }) { try await Task.sleep(for: .milliseconds(20)) }
        #expect(seen.withLock { $0.last } == "ended", "run returns when its task is cancelled")
    }

    @Test func watchSurvivesDroppedConnectionsOver10000Writes() async throws {
        // The emulator drops every watch connection after 997 events; the informer must resume from the last
        // resourceVersion it saw, losing and duplicating nothing.
        let e = try await startEmulator { $0.faults.dropWatchAfterEvents = 997 }
        defer { Task { await e.stop() } }
        let c = client(e, concurrency: 8)
        let informer = Informer(client: c, resource: .secrets, namespace: "default")
        let collector = Collector(informer.events())
        #expect(await collector.wait(seconds: 10) { $0.contains { if case .synced = $0 { true } else { false } } })
        let total = 10_000
        try await bounded(total, width: 8) { i in
            _ = try await c.create(.secrets, secret(String(format: "w-%05d", i)))
        }
        let complete = await collector.wait(seconds: 120) { evs in evs.count >= total + 1 }
        #expect(complete)
        try await Task.sleep(for: .milliseconds(300))  // let any duplicate arrive before checking
        collector.task.cancel()
        let events = collector.events.withLock { $0 }
        let added = events.compactMap { if case .added(let o) = $0 { o } else { nil } }
        #expect(added.count == total)
        #expect(Set(added.map(name)).count == total)
        let versions = added.map(rv)
        #expect(zip(versions, versions.dropFirst()).allSatisfy { $0 < $1 }, "events out of order")
        #expect(informer.objects.count == total)
        #expect(informer.statistics.lists == 1)
        #expect(informer.statistics.watches >= 10)
        #expect(e.counters()["dropped-watches", default: 0] >= 10)
    }

    @Test func aQuietWatchAfterAFailureCountsAsHealthy() async throws {
        // No bookmarks and no changes: only the watch's 200 answer says the API server is back.
        let e = try await startEmulator { $0.bookmarkInterval = .seconds(3600) }
        defer { Task { await e.stop() } }
        let c = client(e)
        let clock = GateClock()
        let informer = Informer(client: c, resource: .secrets, namespace: "default", clock: clock)
        let collector = Collector(informer.events())
        #expect(await collector.wait { Collector.syncs($0) == 1 })
        clock.close()
        let deadline = ContinuousClock.now + .seconds(10)
        while e.openWatches == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        e.dropWatches(abrupt: true)
        while clock.sleeps == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(informer.statistics.consecutiveFailures == 1)
        clock.open()
        while informer.statistics.consecutiveFailures != 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(informer.statistics.consecutiveFailures == 0, "the re-established watch answered")
        #expect(informer.statistics.lists == 1, "resumed, not relisted")
    }

    @Test func goneLeadsToRelist() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        _ = try await c.create(.secrets, secret("keep"))
        _ = try await c.create(.secrets, secret("remove"))
        let clock = GateClock()
        let informer = Informer(client: c, resource: .secrets, namespace: "default", clock: clock)
        let collector = Collector(informer.events())
        #expect(await collector.wait { Collector.syncs($0) == 1 })
        // Hold the informer in its reconnect backoff while the server moves on and forgets its history.
        clock.close()
        e.dropWatches(abrupt: true)
        let deadline = ContinuousClock.now + .seconds(10)
        while clock.sleeps == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(clock.sleeps == 1)
        _ = try await c.create(.secrets, secret("new"))
        try await c.delete(.secrets, name: "remove")
        e.compact()
        clock.open()
        #expect(await collector.wait { Collector.syncs($0) == 2 })
        #expect(informer.statistics.lists == 2)
        #expect(informer.objects.keys.sorted() == ["default/keep", "default/new"])
        #expect(try informer.objects(matching: "").map(name) == ["keep", "new"])
        #expect(try informer.objects(matching: "tier in (db)").isEmpty)
        #expect(throws: LabelSelectorError.self) { try informer.objects(matching: "tier in db") }
        let events = collector.events.withLock { $0 }
        let afterFirstSync = events.drop { if case .synced = $0 { false } else { true } }.dropFirst()
        let summary = afterFirstSync.map { ev -> String in
            switch ev {
            case .added(let o): "added \(name(o))"
            case .modified(let o): "modified \(name(o))"
            case .deleted(let o): "deleted \(name(o))"
            case .synced: "synced"
            }
        }
        #expect(summary == ["deleted remove", "added new", "synced"])
    }

    @Test func clientSideFilterTreatsAnObjectThatStopsMatchingAsDeleted() async throws {
        // `include` (pull mode's requests: an annotation no selector can ask for): refused objects are never cached,
        // one that stops matching leaves the cache with a deleted event, on a watch and on a relist alike.
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        func annotate(_ n: String, _ v: JSONValue) async throws {
            _ = try await c.mergePatch(.secrets, namespace: "default", name: n,
                                       .object(JSONObject([("metadata", .object(JSONObject([("annotations", .object(JSONObject([("ask", v)])))])))])))
        }
        _ = try await c.create(.secrets, secret("asks"))
        _ = try await c.create(.secrets, secret("quiet"))
        try await annotate("asks", .string("yes"))
        let informer = Informer(client: c, resource: .secrets, namespace: "default", include: { $0["metadata"]?["annotations"]?["ask"] != nil }) { $0 }
        let collector = Collector(informer.events())
        #expect(await collector.wait { Collector.syncs($0) == 1 })
        #expect(informer.objects.keys.sorted() == ["default/asks"])
        try await annotate("quiet", .string("now"))
        #expect(await collector.wait { _ in informer.objects.count == 2 })
        try await annotate("asks", .null)
        #expect(await collector.wait { $0.contains { if case .deleted(let o) = $0 { name(o) == "asks" } else { false } } })
        #expect(informer.objects.keys.sorted() == ["default/quiet"])
        // A change to an object that never matched is no event at all.
        let before = collector.events.withLock { $0.count }
        _ = try await c.mergePatch(.secrets, namespace: "default", name: "asks", .object(JSONObject([("data", .object(JSONObject([("k", .string("djI="))])))])))
        try await c.delete(.secrets, name: "asks")
        try await annotate("quiet", .string("again"))
        #expect(await collector.wait { $0.count == before + 1 })
        let last = collector.events.withLock { $0.last }
        if case .modified(let o)? = last { #expect(name(o) == "quiet") } else { Issue.record("expected modified quiet, got \(String(describing: last))") }
        // After a relist (410), the cache holds exactly what matches.
        e.dropWatches(abrupt: true)
        e.compact()
        try await annotate("quiet", .null)
        #expect(await collector.wait { _ in informer.objects.isEmpty })
    }

    @Test func selectorWatchSeesObjectsEnterAndLeaveTheSelection() async throws {
        // As the API server's cache watcher: an update that makes an object match is ADDED, one that makes it stop
        // matching is DELETED (with the previous content and the new resourceVersion), both matching is MODIFIED.
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        let created = try await c.create(.secrets, secret("a"))
        var opts = ListOptions(labelSelector: "pick=yes")
        opts.resourceVersion = created["metadata"]?["resourceVersion"]?.stringValue
        opts.timeoutSeconds = 2
        func label(_ v: JSONValue) async throws -> JSONValue {
            try await c.mergePatch(.secrets, namespace: "default", name: "a",
                                   .object(JSONObject([("metadata", .object(JSONObject([("labels", .object(JSONObject([("pick", v)])))])))])))
        }
        let enter = try await label(.string("yes"))
        _ = try await c.mergePatch(.secrets, namespace: "default", name: "a", .object(JSONObject([("data", .object(JSONObject([("k", .string("djI="))])))])))
        let leave = try await label(.string("no"))
        _ = try await label(.string("still-no"))
        var events: [WatchEvent] = []
        for try await ev in c.watch(.secrets, namespace: "default", options: opts) where ev.type != "BOOKMARK" { events.append(ev) }
        #expect(events.map(\.type) == ["ADDED", "MODIFIED", "DELETED"])
        #expect(events.first?.object["metadata"]?["resourceVersion"] == enter["metadata"]?["resourceVersion"])
        let gone = try #require(events.last)
        #expect(gone.object["metadata"]?["labels"]?["pick"]?.stringValue == "yes", "DELETED carries the previous content")
        #expect(gone.object["metadata"]?["resourceVersion"] == leave["metadata"]?["resourceVersion"])
    }

    @Test func watchFromTooOldVersionGivesExpiredStatus() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        _ = try await c.create(.secrets, secret("a"))
        e.compact()
        var opts = ListOptions()
        opts.resourceVersion = "2"
        var events: [WatchEvent] = []
        for try await ev in c.watch(.secrets, namespace: "default", options: opts) { events.append(ev) }
        #expect(events.count == 1)
        #expect(events.first?.type == "ERROR")
        let status = try #require(events.first.flatMap { KubeStatus(json: $0.object) })
        #expect(status.code == 410)
        #expect(status.reason == "Expired")
        #expect(status.message.hasPrefix("too old resource version: 2 ("))
    }

    @Test func failedWatchRequestThrowsTheStatus() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        do {
            for try await _ in client(e, token: "bad-token").watch(.secrets, namespace: "default") {}
            Issue.record("watch with a bad token streamed")
        } catch let error as KubeError {
            #expect(error.httpStatus == 401)
            #expect(error.reason == "Unauthorized")
        }
    }
}
/// A server that answers a watch with 200 and then sends bytes without a newline, forever: the stream ends with an
/// error once the pending line passes 16 MiB, instead of growing without bound.
@Suite struct EndlessWatchLineTests {
    @Test func endlessLineEndsTheWatch() async throws {
        let script = """
            import socket, sys
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
            print(s.getsockname()[1], flush=True)
            c, _ = s.accept(); c.recv(65536)
            c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n\\r\\n")
            block = b"x" * 65536
            try:
                while True: c.sendall(block)
            except Exception:
                pass
            """
        let server = try RawServer(script)
        defer { server.stop() }
        let port = try #require(Int(try server.readLine()))
        let client = KubeClient(config: KubeConfig(server: "http://127.0.0.1:\(port)"))
        do {
            for try await _ in client.watch(.secrets) { Issue.record("an event arrived") }
            Issue.record("the stream ended without an error")
        } catch {
            #expect("\(error)".contains("an event longer than 16 MiB"), "\(error)")
        }
    }
}

/// A server that sends one watch event, then a line that is not one, then keeps the connection open: the consumer
/// gets the event, then an error, and the transfer is stopped (the server sees the connection close).
@Suite struct MalformedWatchEventTests {
    @Test func aMalformedLineEndsTheWatchAfterTheGoodOnes() async throws {
        let script = """
            import socket, sys, time
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
            print(s.getsockname()[1], flush=True)
            c, _ = s.accept(); c.recv(65536)
            c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n")
            def chunk(b): c.sendall(b"%x\\r\\n%s\\r\\n" % (len(b), b))
            chunk(b'{"type":"ADDED","object":{"kind":"Secret","metadata":{"name":"a","namespace":"n","resourceVersion":"7"}}}\\n')
            time.sleep(0.2)
            chunk(b'{"type":"ADDED","object":\\n')
            c.settimeout(10)
            try:
                while c.recv(1): pass
                print("closed", flush=True)
            except Exception:
                print("still open", flush=True)
            """
        let server = try RawServer(script)
        defer { server.stop() }
        let port = try #require(Int(try server.readLine()))
        let client = KubeClient(config: KubeConfig(server: "http://127.0.0.1:\(port)"))
        var names: [String] = []
        do {
            for try await e in client.watch(.secrets) { names.append(e.object["metadata"]?["name"]?.stringValue ?? "") }
            Issue.record("the stream ended without an error")
        } catch {
            #expect("\(error)".contains("the server sent an event that is not a JSON watch event"), "\(error)")
        }
        #expect(names == ["a"])
        #expect(try server.readLine() == "closed")
    }
}

/// A Python socket server (`script`) as a child process; its standard output is read a line at a time.
final class RawServer: @unchecked Sendable {
    let process = Process()
    let out = Pipe()

    init(_ script: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script]
        process.standardOutput = out
        try process.run()
    }

    func readLine() throws -> String {
        var line: [UInt8] = []
        while let b = try out.fileHandleForReading.read(upToCount: 1), let c = b.first, c != 0x0A { line.append(c) }
        return String(decoding: line, as: UTF8.self)
    }

    func stop() { process.terminate() }
}
