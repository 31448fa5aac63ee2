internal import Synchronization

/// A client-side request rate limit: `qps` requests per second on average, bursts of up to `burst` (client-go's
/// token bucket, `flowcontrol.NewTokenBucketRateLimiter`).
///
/// Off by default: the API server's Priority and Fairness (every supported Kubernetes version) protects it by
/// concurrency, which the client already bounds (`maxConcurrentRequests`), and sig-api-machinery recommends that
/// controllers leave client-side limits off (controller-runtime does since 2025). client-go's own defaults, QPS 5
/// and burst 10, would take over five hours for 100,000 writes.
public struct RateLimit: Sendable, Equatable {
    public var qps: Double
    public var burst: Int

    /// `qps` > 0 requests per second, bursts of `burst` ≥ 1.
    public init(qps: Double, burst: Int) {
        self.qps = qps
        self.burst = max(1, burst)
    }
}

/// The token bucket's arithmetic, apart from waiting (so tests drive time): a full bucket of `burst` tokens refilled
/// at `qps` per second; each request takes one, and a request that finds none is told how long until its token.
package struct TokenBucket: Sendable {
    let limit: RateLimit
    private var tokens: Double
    private var last: ContinuousClock.Instant

    package init(_ limit: RateLimit, now: ContinuousClock.Instant) {
        self.limit = limit
        tokens = Double(limit.burst)
        last = now
    }

    /// Takes a token at `now` (reserving a future one when none is left): the time to wait before sending.
    package mutating func take(now: ContinuousClock.Instant) -> Duration {
        if now > last {
            let elapsed = now - last
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            tokens = min(Double(limit.burst), tokens + seconds * limit.qps)
            last = now
        }
        tokens -= 1
        guard tokens < 0 else { return .zero }
        return .nanoseconds(Int64((-tokens / limit.qps * 1e9).rounded(.up)))
    }
}

/// A `TokenBucket` shared by a client's requests.
final class RateLimiter: Sendable {
    private let bucket: Mutex<TokenBucket>
    private let clock: any Clock<Duration>

    init(_ limit: RateLimit, clock: any Clock<Duration> = ContinuousClock()) {
        bucket = Mutex(TokenBucket(limit, now: .now))
        self.clock = clock
    }

    /// Waits for this request's token.
    func wait() async throws {
        let delay = bucket.withLock { $0.take(now: .now) }
        if delay > .zero { try await clock.sleep(for: delay) }
    }
}
