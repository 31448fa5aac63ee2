public import DynSecretKube
internal import Foundation
public import Logging
internal import Synchronization

/// How the API server has been answering the controller's own requests, for readiness, metrics and the log.
///
/// A 401 or 403 is an answer, but not one the controller can work with: readiness fails once such answers have
/// gone on for `authGrace` with no successful (2xx) answer in between (a 403 for one namespace among successes
/// elsewhere keeps the controller ready). Each failure class (credentials refused, forbidden, TLS trust, TLS
/// handshake, unreachable, timeout) is logged at warning the first time, then at most once per `logInterval` with
/// the number of repeats; the line names the server, the request and the reason, never a credential.
public final class APIHealth: Sendable {
    /// The classes of failure the log and readiness tell apart.
    public enum Failure: String, Sendable, CaseIterable {
        case unauthorized, forbidden
        case tlsCertificate = "tls-certificate"
        case tlsHandshake = "tls-handshake"
        case unreachable, timeout

        /// What the log line and the readiness message say.
        public var summary: String {
            switch self {
            case .unauthorized: "the API server refuses the controller's credentials (401 Unauthorized)"
            case .forbidden: "the API server forbids a request of the controller (403 Forbidden: check its RBAC)"
            case .tlsCertificate: "the API server's certificate is not trusted"
            case .tlsHandshake: "the TLS handshake with the API server failed"
            case .unreachable: "the API server cannot be reached"
            case .timeout: "a request to the API server timed out"
            }
        }
    }

    private static let transportFailures: [Failure] = [.unreachable, .timeout, .tlsCertificate, .tlsHandshake]

    struct State {
        var lastAnswer: ContinuousClock.Instant?
        var authFailingSince: ContinuousClock.Instant?
        var consecutiveAuthFailures = 0
        var lastAuthStatus = 0
        var lastWrite: Date?
        var logged: [Failure: (at: ContinuousClock.Instant, repeats: Int)] = [:]
        var failing: Set<Failure> = []
        var recoveryLogged: [Failure: ContinuousClock.Instant] = [:]
    }

    private let state = Mutex(State())
    private let logger = Mutex<Logger?>(nil)
    private let recovery = Mutex<(@Sendable () -> Void)?>(nil)
    /// How long 401/403 answers may go on before readiness fails.
    public let authGrace: Duration
    /// The shortest time between two log lines of one failure class.
    public let logInterval: Duration

    public init(authGrace: Duration = .seconds(5), logInterval: Duration = .seconds(60)) {
        self.authGrace = authGrace
        self.logInterval = logInterval
    }

    /// Where failures are logged (until set, they are only counted).
    public func attach(_ logger: Logger) { self.logger.withLock { $0 = logger } }

    /// Called when a refusal of the credentials that lasted `authGrace` ends with a successful answer (the
    /// controller then retries its work at once instead of waiting out its backoff).
    public func onRecovery(_ handler: @escaping @Sendable () -> Void) { recovery.withLock { $0 = handler } }

    /// Records one request's outcome.
    public func record(_ answer: APIAnswer) {
        let now = ContinuousClock.now
        var failure: Failure?
        switch answer.status {
        case 401: failure = .unauthorized
        case 403: failure = .forbidden
        case 0:
            switch answer.transportFailure {
            case .tlsCertificate?: failure = .tlsCertificate
            case .tlsHandshake?: failure = .tlsHandshake
            case .timeout?: failure = .timeout
            case .tooLarge?: failure = nil
            default: failure = .unreachable
            }
        default: failure = nil
        }
        let (line, recovered, retry): ((Failure, Int)?, [Failure], Bool) = state.withLock { s in
            var recovered: [Failure] = []
            var retry = false
            switch answer.status {
            case 200..<300:
                s.lastAnswer = now
                // The end of a refusal that lasted (not a 403 for one namespace among successes elsewhere).
                if let since = s.authFailingSince, now - since >= authGrace {
                    recovered.append(s.lastAuthStatus == 401 ? .unauthorized : .forbidden)
                    retry = true
                }
                s.authFailingSince = nil
                s.consecutiveAuthFailures = 0
                switch answer.method {
                case "POST", "PUT", "PATCH", "DELETE": s.lastWrite = Date()
                default: break
                }
                if !s.failing.isEmpty { recovered += Self.transportFailures.filter { s.failing.contains($0) } }
                s.failing = []
            case 401, 403:
                s.consecutiveAuthFailures += 1
                s.lastAuthStatus = answer.status
                if s.authFailingSince == nil { s.authFailingSince = now }
            case 1..<500:
                s.lastAnswer = now
                // Any answer means the server is reachable and the TLS connection works.
                if !s.failing.isEmpty { for f in Self.transportFailures where s.failing.remove(f) != nil { recovered.append(f) } }
            default:
                break
            }
            if !recovered.isEmpty { recovered = recovered.filter { f in
                if let at = s.recoveryLogged[f], now - at < logInterval { return false }
                s.recoveryLogged[f] = now
                return true
            } }
            guard let failure else { return (nil, recovered, retry) }
            s.failing.insert(failure)
            if let last = s.logged[failure], now - last.at < logInterval {
                s.logged[failure] = (last.at, last.repeats + 1)
                return (nil, recovered, retry)
            }
            let repeats = s.logged[failure]?.repeats ?? 0
            s.logged[failure] = (now, 0)
            return ((failure, repeats), recovered, retry)
        }
        if retry { recovery.withLock { $0 }?() }
        guard line != nil || !recovered.isEmpty, let log = logger.withLock({ $0 }) else { return }
        for f in recovered.sorted(by: { $0.rawValue < $1.rawValue }) {
            log.info("API server answers again", metadata: ["server": "\(answer.server)", "was": "\(f.rawValue)"])
        }
        if let (failure, repeats) = line {
            var meta: Logger.Metadata = ["server": "\(answer.server)", "request": "\(answer.method) \(answer.path)", "failure": "\(failure.rawValue)"]
            if answer.status > 0 { meta["code"] = "\(answer.status)" }
            if let reason = answer.reason { meta["reason"] = "\(reason)" }
            if repeats > 0 { meta["repeats-since-last-line"] = "\(repeats)" }
            log.warning("\(failure.summary)", metadata: meta)
        }
    }

    /// When the API server last gave an answer the controller can work with (any status but 401, 403 and 5xx).
    public var lastAnswer: ContinuousClock.Instant? { state.withLock { $0.lastAnswer } }

    /// 401/403 answers since the last successful one.
    public var consecutiveAuthFailures: Int { state.withLock { $0.consecutiveAuthFailures } }

    /// When the last write (create, update, patch, delete) succeeded, in seconds since 1970.
    public var lastSuccessfulWrite: Double? { state.withLock { $0.lastWrite?.timeIntervalSince1970 } }

    /// Why the controller cannot do its job, if 401/403 answers have gone on for longer than `authGrace`.
    public func authProblem(at now: ContinuousClock.Instant = .now) -> String? {
        state.withLock { s in
            guard let since = s.authFailingSince, now - since >= authGrace else { return nil }
            let what = s.lastAuthStatus == 401 ? Failure.unauthorized.summary : Failure.forbidden.summary
            let seconds = Int((now - since).components.seconds)
            return "\(what): \(s.consecutiveAuthFailures) such answers and none successful for \(seconds) s"
        }
    }

    /// The failure classes seen since the last successful answer, for the readiness message.
    public var failing: [Failure] { state.withLock { $0.failing.sorted { $0.rawValue < $1.rawValue } } }
}
