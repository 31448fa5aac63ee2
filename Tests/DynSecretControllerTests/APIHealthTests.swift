import DynSecretController
import DynSecretKube
import Logging
import Synchronization
import Testing

/// Collects log lines (level and message) for assertions.
final class CapturedLog: Sendable {
    let lines = Mutex<[(Logger.Level, String, Logger.Metadata)]>([])

    var logger: Logger {
        Logger(label: "test") { _ in Handler(sink: self) }
    }

    struct Handler: LogHandler {
        let sink: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            sink.lines.withLock { $0.append((event.level, "\(event.message)", event.metadata ?? [:])) }
        }
    }
}

@Suite struct APIHealthTests {
    static let server = "https://api.example.test:6443"

    static func answer(_ status: Int, _ method: String = "GET", kind: TransportError.Kind? = nil) -> APIAnswer {
        APIAnswer(server: server, method: method, path: "/api/v1/namespaces", status: status,
                  reason: status == 401 ? "Unauthorized" : status == 0 ? "SSL certificate problem: unable to get local issuer certificate" : nil,
                  transportFailure: kind)
    }

    @Test func refusedCredentialsAreOneWarningThenUnreadyAfterTheGraceThenRecovered() {
        let log = CapturedLog()
        let health = APIHealth(authGrace: .seconds(5), logInterval: .seconds(60))
        health.attach(log.logger)
        let retried = Mutex(0)
        health.onRecovery { retried.withLock { $0 += 1 } }
        health.record(Self.answer(201, "POST"))
        #expect(health.lastSuccessfulWrite != nil)
        for _ in 0..<5 { health.record(Self.answer(401, "PATCH")) }
        #expect(health.consecutiveAuthFailures == 5)
        #expect(health.authProblem() == nil, "within the grace period")
        let later = ContinuousClock.now + .seconds(6)
        let problem = health.authProblem(at: later)
        #expect(problem?.contains("401") == true && problem?.contains("5 such answers") == true, "\(problem ?? "nil")")
        let warnings = log.lines.withLock { $0.filter { $0.0 == .warning } }
        #expect(warnings.count == 1, "one line for the burst: \(warnings.map(\.1))")
        #expect(warnings.first?.1.contains("refuses the controller's credentials") == true)
        #expect(warnings.first?.2["server"] == .string(Self.server) && warnings.first?.2["code"] == .string("401"))
        // A success ends it; the backoff is cut short only for a refusal that lasted the grace period.
        health.record(Self.answer(200))
        #expect(health.consecutiveAuthFailures == 0 && health.authProblem(at: later) == nil)
        #expect(retried.withLock { $0 } == 0, "a refusal shorter than the grace period does not requeue everything")
    }

    @Test func aLastingRefusalEndsWithARetryOfEverything() {
        let health = APIHealth(authGrace: .zero)
        let retried = Mutex(0)
        health.onRecovery { retried.withLock { $0 += 1 } }
        health.record(Self.answer(401))
        #expect(health.authProblem() != nil)
        health.record(Self.answer(200))
        health.record(Self.answer(200))
        #expect(retried.withLock { $0 } == 1)
        #expect(health.authProblem() == nil)
    }

    @Test func aForbiddenNamespaceAmongSuccessesKeepsTheControllerReady() {
        let health = APIHealth(authGrace: .seconds(5))
        for _ in 0..<10 {
            health.record(Self.answer(403, "PATCH"))
            health.record(Self.answer(200))
        }
        #expect(health.authProblem(at: .now + .seconds(60)) == nil)
    }

    @Test func transportFailureClassesAreLoggedOnceEachAndTheirEnd() {
        let log = CapturedLog()
        let health = APIHealth()
        health.attach(log.logger)
        for _ in 0..<3 { health.record(Self.answer(0, kind: .tlsCertificate)) }
        for _ in 0..<3 { health.record(Self.answer(0, kind: .connect)) }
        health.record(Self.answer(0, kind: .timeout))
        #expect(health.failing.map(\.rawValue) == ["timeout", "tls-certificate", "unreachable"])
        let warnings = log.lines.withLock { $0.filter { $0.0 == .warning }.map(\.1) }
        #expect(warnings == [APIHealth.Failure.tlsCertificate, .unreachable, .timeout].map { $0.summary }, "\(warnings)")
        health.record(Self.answer(404))
        #expect(health.failing.isEmpty)
        let infos = log.lines.withLock { $0.filter { $0.0 == .info }.map { $0.2["was"] } }
        #expect(infos.count == 3)
    }
}
