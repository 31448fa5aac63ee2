import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

let nodePath: String? = ["/usr/bin/node", "/usr/local/bin/node"].first { FileManager.default.isExecutableFile(atPath: $0) }

@Suite(.serialized) struct TransportTests {
    /// Node's built-in HTTP/2 server over TLS (a real h2 peer): the transport negotiates HTTP/2 through ALPN,
    /// reuses one connection for many streams, and accepts gzip.
    @Test(.enabled(if: nodePath != nil && opensslPath != nil, "needs node and openssl"))
    func http2WhenTheServerOffersIt() async throws {
        let dir = try TempDir()
        try await makePKI(dir)
        try dir.write("h2.js", """
        const http2 = require('http2'), fs = require('fs'), zlib = require('zlib');
        const server = http2.createSecureServer({key: fs.readFileSync(process.argv[2]), cert: fs.readFileSync(process.argv[3]), allowHTTP1: true}, (req, res) => {
          const body = JSON.stringify({httpVersion: req.httpVersion, path: req.url});
          if ((req.headers['accept-encoding'] || '').includes('gzip')) {
            res.writeHead(200, {'content-type': 'application/json', 'content-encoding': 'gzip'});
            res.end(zlib.gzipSync(body));
          } else {
            res.writeHead(200, {'content-type': 'application/json'});
            res.end(body);
          }
        });
        server.listen(0, '127.0.0.1', () => { console.log(server.address().port); });

        """)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(nodePath))
        p.arguments = [dir.file("h2.js"), dir.file("server.key"), dir.file("server.crt")]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { kill(p.processIdentifier, SIGKILL) }
        let portLine: String = await withCheckedContinuation { cont in
            Thread {
                var bytes: [UInt8] = []
                while let b = try? out.fileHandleForReading.read(upToCount: 1), let c = b.first, c != 0x0A { bytes.append(c) }
                cont.resume(returning: String(decoding: bytes, as: UTF8.self))
            }.start()
        }
        let port = try #require(Int(portLine))
        var settings = TransportSettings()
        settings.caPEM = try dir.bytes("ca.crt")
        let t = CurlTransport(settings: settings, maxConcurrentRequests: 1)
        for i in 0..<5 {
            let r = try await t.send(HTTPRequest(method: "GET", url: "https://127.0.0.1:\(port)/item/\(i)"))
            #expect(r.status == 200)
            #expect(r.httpVersion == "2")
            #expect(r.header("content-encoding") == "gzip")
            let v = try JSONParser.parse(r.body)  // decompressed by libcurl
            #expect(v["httpVersion"]?.stringValue == "2.0")
            #expect(v["path"]?.stringValue == "/item/\(i)")
        }
        #expect(t.statistics.connectionsOpened == 1)
    }

    @Test func requestTimeout() async throws {
        let e = try await startEmulator { $0.faults.latencyMilliseconds = 5000 }
        defer { Task { await e.stop() } }
        var config = KubeConfig(server: e.url, credentials: .token(adminToken))
        config.requestTimeout = .milliseconds(300)
        var retry = RetryPolicy()
        retry.maxAttempts = 1
        let start = ContinuousClock.now
        do {
            _ = try await KubeClient(config: config, retry: retry).get(.namespaces, name: "default")
            Issue.record("a request past its timeout succeeded")
        } catch {
            #expect(error.message.contains("timed out"), "\(error.message)")
        }
        #expect(ContinuousClock.now - start < .seconds(3))
    }

    /// A server that accepts the request and sends nothing: the request fails at the stall timeout, not at the
    /// whole-request timeout, and a read is repeated once, not up to its retry limit.
    @Test func silentServerFailsAtTheStallTimeoutAndIsRetriedOnce() async throws {
        let e = try await startEmulator { $0.faults.latencyMilliseconds = 20_000 }
        defer { Task { await e.stop() } }
        var config = KubeConfig(server: e.url, credentials: .token(adminToken))
        config.transport.stallTimeout = .seconds(1)
        var retry = RetryPolicy()
        retry.sleep = { _ in }
        let client = KubeClient(config: config, retry: retry)
        let start = ContinuousClock.now
        do {
            _ = try await client.get(.namespaces, name: "default")
            Issue.record("a silent server answered")
        } catch {
            #expect(error.message.contains("too slow"), "\(error.message)")
        }
        let took = ContinuousClock.now - start
        #expect(took >= .seconds(2) && took < .seconds(8), "\(took)")
        #expect(client.retryCount == 1)
    }

    @Test func droppedConnectionsAreRetriedForReads() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        for i in 0..<20 { _ = try await c.create(.secrets, secret("d\(i)")) }
        var faults = Faults()
        faults.dropConnectionRate = 0.3
        e.setFaults(faults)
        var retry = RetryPolicy()
        retry.maxAttempts = 20
        retry.sleep = { _ in }
        let reader = client(e, retry: retry)
        // Read until the emulator has dropped a few connections under us (each request is dropped with
        // probability 0.3, so this takes a handful of reads; the bound only stops a broken fault injector).
        var reads = 0
        while reads < 20 || (e.counters()["dropped-connections", default: 0] < 3 && reads < 300) {
            let s = try await reader.get(.secrets, name: "d\(reads % 20)")
            #expect(s["metadata"]?["name"]?.stringValue == "d\(reads % 20)")
            reads += 1
        }
        let dropped = e.counters()["dropped-connections", default: 0]
        // Every read succeeded although connections were dropped under it. libcurl itself resends a request
        // whose reused connection turns out dead before any answer, and the client retries the rest, so how many
        // retries the client made depends on which connections were hit: at most one per drop.
        #expect(dropped > 0)
        #expect(reader.retryCount <= dropped)
    }
}
