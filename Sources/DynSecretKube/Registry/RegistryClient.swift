public import DynSecretCore
internal import Foundation

/// The outcome of a registry check.
public enum RegistryStatus: String, Sendable, CaseIterable {
    /// The credentials were accepted (and, for an image, the manifest can be pulled).
    case ok
    /// The registry did not ask for credentials (for an image: the anonymous pull works).
    case anonymous
    /// The registry or its token server rejected the credentials, or demanded credentials none were given for.
    case unauthorized
    /// Authenticated, but without pull rights on the repository.
    case denied
    /// The repository or the tag/digest does not exist.
    case notFound = "not-found"
    /// No connection, a timeout, or an answer that is not the registry API.
    case unreachable
    /// The TLS handshake failed or the server certificate is not trusted.
    case tlsError = "tls-error"

    /// Whether this outcome means a pull would work.
    public var succeeded: Bool { self == .ok || self == .anonymous }
}

/// One registry check: status, where, what the registry said, and how long it took. Never holds a secret.
public struct RegistryCheck: Sendable {
    public var status: RegistryStatus
    /// The registry host (and port) that was contacted, such as `registry-1.docker.io` for Docker Hub keys.
    public var registry: String
    /// The base URL that answered (`https://host:port`), when a connection was made.
    public var endpoint: String?
    /// Why, in one line, with the registry's own error code and message when it sent one.
    public var message: String
    public var elapsed: Duration
}

/// Where a registry is reached: `host[:port]` and the scheme when the pull-secret key names one.
public struct RegistryEndpoint: Sendable, Equatable {
    /// `host[:port]`, lowercased; Docker Hub names become `registry-1.docker.io`.
    public var host: String
    /// `http` or `https` when given explicitly.
    public var scheme: String?

    static let dockerHubNames: Set<String> = ["docker.io", "index.docker.io", "registry-1.docker.io"]

    /// The endpoint of a pull-secret key (`https://index.docker.io/v1/`, `ghcr.io`, `http://localhost:5000/team`);
    /// nil when the key names no host.
    public init?(key: String) {
        var rest = Substring(key)
        var scheme: String?
        for s in ["https", "http"] where rest.lowercased().hasPrefix(s + "://") {
            scheme = s
            rest = rest.dropFirst(s.count + 3)
            break
        }
        let host = rest.prefix { $0 != "/" }.lowercased()
        guard !host.isEmpty, !host.contains("@"), !host.contains(where: { $0 == " " || $0 == "?" || $0 == "#" }) else { return nil }
        self.host = Self.dockerHubNames.contains(host) ? "registry-1.docker.io" : host
        self.scheme = scheme
    }

    /// The endpoint of an image's registry domain (`docker.io` is Docker Hub).
    public init(imageDomain: String) {
        let host = imageDomain.lowercased()
        self.host = Self.dockerHubNames.contains(host) ? "registry-1.docker.io" : host
        self.scheme = nil
    }

    /// The host without its port (IPv6 brackets removed).
    var hostname: String {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            return String(host[host.index(after: host.startIndex)..<close])
        }
        if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") { return String(host[..<colon]) }
        return host
    }

    /// `localhost`, `127.0.0.0/8` or `::1`: container runtimes fall back to plain HTTP for these.
    public var isLoopback: Bool {
        let name = hostname
        if name == "localhost" || name == "::1" { return true }
        let octets = name.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { o in !o.isEmpty && o.count <= 3 && o.allSatisfy { $0 >= "0" && $0 <= "9" } && Int(o)! <= 255 }
    }
}

/// Settings of a `RegistryClient`.
public struct RegistryClientOptions: Sendable {
    /// PEM CA certificates trusted for registries in addition to the system bundle (`--registry-ca`).
    public var extraCAPEM: [UInt8]?
    /// Hosts (`host` for every port, or `host:port`) reached over plain HTTP or unverified TLS (`--insecure-registry`).
    public var insecureRegistries: [String] = []
    /// Limit for each request.
    public var requestTimeout: Duration = .seconds(15)
    /// Limit for each connection attempt.
    public var connectTimeout: Duration = .seconds(5)

    public init() {}
}

/// A distribution-API client that checks credentials and pull access the way a container runtime would:
/// `GET /v2/`, the `WWW-Authenticate` challenge (Basic, or a Bearer token from the realm), then
/// `HEAD /v2/NAME/manifests/REF` with the `repository:NAME:pull` scope.
///
/// Runs on `CurlTransport` (the system proxy variables apply). Messages never contain passwords or tokens.
public final class RegistryClient: Sendable {
    public let options: RegistryClientOptions
    private let verifying: CurlTransport
    private let unverified: CurlTransport

    /// Media types a runtime accepts for a manifest: OCI index and manifest, Docker manifest list and schema 2.
    static let manifestMediaTypes = [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
    static let userAgent = "dynsecret"

    /// A client running at most `maxConcurrentRequests` requests at once.
    public init(options: RegistryClientOptions = RegistryClientOptions(), maxConcurrentRequests: Int = 16) {
        self.options = options
        var settings = TransportSettings()
        settings.extraCAPEM = options.extraCAPEM
        settings.connectTimeout = options.connectTimeout
        settings.proxyURL = nil  // libcurl reads https_proxy/HTTPS_PROXY and http_proxy
        // Loopback registries are never reached through a proxy (as Go's runtimes do): a proxy would see the
        // credentials, and its own localhost is not ours. NO_PROXY's entries are kept.
        let env = ProcessInfo.processInfo.environment
        let noProxy = [env["NO_PROXY"], env["no_proxy"]].compactMap { $0 }.filter { !$0.isEmpty }
        settings.noProxy = (noProxy + ["localhost", "127.0.0.0/8", "::1"]).joined(separator: ",")
        verifying = CurlTransport(settings: settings, maxConcurrentRequests: maxConcurrentRequests)
        settings.insecureSkipVerify = true
        unverified = CurlTransport(settings: settings, maxConcurrentRequests: maxConcurrentRequests)
    }

    /// Whether `--insecure-registry` covers the endpoint.
    func isInsecure(_ e: RegistryEndpoint) -> Bool {
        options.insecureRegistries.contains { entry in
            let h = entry.lowercased()
            return h == e.host || h == e.hostname || "[\(h)]" == e.host
        }
    }

    /// Checks `credential` against the registry of a pull-secret key, as `docker login` does (`GET /v2/`).
    /// With a nil credential it checks whether the registry needs one.
    public func checkLogin(key: String, credential: RegistryCredential?) async -> RegistryCheck {
        let clock = ContinuousClock()
        let start = clock.now
        guard let endpoint = RegistryEndpoint(key: key) else {
            return RegistryCheck(status: .unreachable, registry: key, endpoint: nil, message: "the key names no registry host", elapsed: clock.now - start)
        }
        if endpoint.host.contains("*") {
            return RegistryCheck(status: .unreachable, registry: endpoint.host, endpoint: nil,
                                 message: "a glob key names no single registry; check the images it covers with --image", elapsed: clock.now - start)
        }
        var session = Session(client: self, endpoint: endpoint, credential: credential, start: start)
        return await session.login()
    }

    /// Checks that `image`'s manifest can be read with `credential` (nil: anonymously), as a runtime's pull starts.
    public func checkPull(image: ImageReference, credential: RegistryCredential?) async -> RegistryCheck {
        var session = Session(client: self, endpoint: RegistryEndpoint(imageDomain: image.domain), credential: credential, start: ContinuousClock().now)
        return await session.pull(repository: image.path, reference: image.digest ?? image.tag ?? "latest")
    }

    fileprivate func transport(insecure: Bool) -> CurlTransport { insecure ? unverified : verifying }
}

/// A check that ended early, carrying its result.
private struct Halt: Error {
    let check: RegistryCheck
    init(_ check: RegistryCheck) { self.check = check }
}

/// The state of one check.
private struct Session {
    let client: RegistryClient
    let endpoint: RegistryEndpoint
    let credential: RegistryCredential?
    let start: ContinuousClock.Instant
    var base: String?
    var transport: CurlTransport?
    /// Values that must never appear in a message.
    var secrets: [String]

    init(client: RegistryClient, endpoint: RegistryEndpoint, credential: RegistryCredential?, start: ContinuousClock.Instant) {
        self.client = client
        self.endpoint = endpoint
        // An entry without username and password is no credential: runtimes then pull anonymously.
        self.credential = credential.flatMap { $0.username.isEmpty && $0.password.isEmpty ? nil : $0 }
        self.start = start
        secrets = credential.map { [$0.password, $0.auth] }?.filter { !$0.isEmpty } ?? []
    }

    func done(_ status: RegistryStatus, _ message: String) -> RegistryCheck {
        var text = message
        for s in secrets where s.count >= 4 { text = text.replacingOccurrences(of: s, with: "<redacted>") }
        return RegistryCheck(status: status, registry: endpoint.host, endpoint: base, message: text, elapsed: ContinuousClock().now - start)
    }

    var who: String { credential.map { "user \(KubeNames.goQuote($0.username))" } ?? "no credentials" }

    // MARK: Flows

    mutating func login() async -> RegistryCheck {
        let probe: HTTPResponse
        switch await self.probe() {
        case .failure(let halt): return halt.check
        case .success(let r): probe = r
        }
        switch probe.status {
        case 200:
            return done(.anonymous, "the registry answers /v2/ without asking for credentials; they were not checked")
        case 401:
            guard credential != nil else { return done(.unauthorized, "the registry requires credentials") }
            let header: String
            switch await authorization(for: probe, scope: nil) {
            case .failure(let halt): return halt.check
            case .success(let h):
                header = h.value
            }
            let r: HTTPResponse
            switch await send("GET", base! + "/v2/", authorization: header) {
            case .failure(let halt): return halt.check
            case .success(let response): r = response
            }
            switch r.status {
            case 200: return done(.ok, "\(who) accepted")
            case 401: return done(.unauthorized, "\(who) rejected" + registryError(r))
            case 403: return done(.denied, "\(who) authenticated but refused" + registryError(r))
            default: return unexpected(r, "GET /v2/")
            }
        default:
            return unexpected(probe, "GET /v2/")
        }
    }

    mutating func pull(repository: String, reference: String) async -> RegistryCheck {
        let probe: HTTPResponse
        switch await self.probe() {
        case .failure(let halt): return halt.check
        case .success(let r): probe = r
        }
        var header: String?
        var viaToken = false
        switch probe.status {
        case 200: break
        case 401:
            switch await authorization(for: probe, scope: "repository:\(repository):pull") {
            case .failure(let halt): return halt.check
            case .success(let h):
                header = h.value
                viaToken = h.bearer
            }
        default:
            return unexpected(probe, "GET /v2/")
        }
        let url = base! + "/v2/\(repository)/manifests/\(reference)"
        let accept = RegistryClient.manifestMediaTypes.joined(separator: ", ")
        var r: HTTPResponse
        switch await manifest(url, authorization: header, accept: accept) {
        case .failure(let halt): return halt.check
        case .success(let response): r = response
        }
        // A registry that answers /v2/ anonymously may still challenge the repository (Nexus, Artifactory):
        // answer that challenge, with its scope, once.
        if r.status == 401, header == nil, credential != nil || !r.challenges.isEmpty {
            switch await authorization(for: r, scope: "repository:\(repository):pull") {
            case .failure(let halt): return halt.check
            case .success(let h):
                header = h.value
                viaToken = h.bearer
            }
            switch await manifest(url, authorization: header, accept: accept) {
            case .failure(let halt): return halt.check
            case .success(let response): r = response
            }
        }
        let what = repository + (reference.contains(":") ? "@" : ":") + reference
        switch r.status {
        case 200...299:
            return header == nil || credential == nil ? done(.anonymous, "\(what) can be pulled without credentials") : done(.ok, "\(who) can pull \(what)")
        case 401 where viaToken && credential != nil:
            // A token without the access asked for is `insufficient_scope`; a token the registry does not accept
            // (audience, expiry, signature) is `invalid_token`: rejected, not denied.
            let error = r.challenges.first { $0.scheme == "bearer" }?.parameters["error"]
            if error == "invalid_token" { return done(.unauthorized, "the registry rejected the token issued for \(who)" + registryError(r)) }
            return done(.denied, "\(who) has no pull access to \(repository)" + registryError(r))
        case 401:
            return done(.unauthorized, credential == nil ? "pulling \(what) requires credentials" + registryError(r) : "\(who) rejected" + registryError(r))
        case 403:
            return done(.denied, "\(who) has no pull access to \(repository)" + registryError(r))
        case 404:
            return done(.notFound, "\(what) not found" + registryError(r))
        default:
            return unexpected(r, "HEAD manifest")
        }
    }

    /// `HEAD` of a manifest; after an error, the same `GET` (a HEAD answer has no body to read the registry's
    /// message from, and some registries answer HEAD with 405): the GET's answer counts when it differs.
    mutating func manifest(_ url: String, authorization: String?, accept: String) async -> Result<HTTPResponse, Halt> {
        let head: HTTPResponse
        switch await send("HEAD", url, authorization: authorization, accept: accept) {
        case .failure(let halt): return .failure(halt)
        case .success(let response): head = response
        }
        guard head.status >= 400, case .success(let get) = await send("GET", url, authorization: authorization, accept: accept) else { return .success(head) }
        return .success(get)
    }

    // MARK: Steps

    /// `GET /v2/` over the scheme rules: an explicit scheme is used as is; otherwise HTTPS, falling back to
    /// plain HTTP for loopback and `--insecure-registry` hosts when the connection or the TLS handshake fails.
    mutating func probe() async -> Result<HTTPResponse, Halt> {
        let insecure = client.isInsecure(endpoint)
        var plan: [(scheme: String, insecure: Bool)]
        if let scheme = endpoint.scheme {
            plan = [(scheme, insecure)]
        } else if insecure || endpoint.isLoopback {
            plan = [("https", insecure), ("http", insecure)]
        } else {
            plan = [("https", false)]
        }
        var failures: [TransportError] = []
        for (i, attempt) in plan.enumerated() {
            let candidate = "\(attempt.scheme)://\(endpoint.host)"
            let transport = client.transport(insecure: attempt.insecure)
            do {
                let r = try await fetch(transport, "GET", candidate + "/v2/", authorization: nil)
                if i > 0 && r.status != 200 && r.status != 401 && !failures.isEmpty {
                    break  // the fallback found something that is not a registry: report the first failure
                }
                base = candidate
                self.transport = transport
                return .success(r)
            } catch let error as TransportError {
                failures.append(error)
                let fallBack = error.kind == .connect || error.kind == .tlsHandshake || (attempt.insecure && error.kind == .tlsCertificate)
                if !fallBack { break }
            } catch let halt as Halt {
                return .failure(halt)
            } catch {
                failures.append(TransportError(message: "\(error)", notSent: false, cancelled: false))
                break
            }
        }
        return .failure(Halt(transportFailure(failures)))
    }

    func transportFailure(_ failures: [TransportError]) -> RegistryCheck {
        let tls = failures.contains { $0.kind == .tlsCertificate || $0.kind == .tlsHandshake }
        let status: RegistryStatus = tls ? .tlsError : .unreachable
        return done(status, failures.map(\.message).joined(separator: "; then "))
    }

    /// The `Authorization` value answering the challenge of a 401: Basic with the credential, or a Bearer token
    /// from the realm (asked with the credential when there is one).
    /// A token obtained joins `secrets`, so no message of this check can show it.
    mutating func authorization(for response: HTTPResponse, scope: String?) async -> Result<(value: String, bearer: Bool), Halt> {
        let challenges = response.challenges
        if let bearer = challenges.first(where: { $0.scheme == "bearer" }) {
            let token = await token(bearer, scope: scope)
            if case .success(let t) = token { secrets.append(t) }
            return token.map { ("Bearer " + $0, true) }
        }
        if challenges.contains(where: { $0.scheme == "basic" }) {
            guard let credential else { return .failure(Halt(done(.unauthorized, "the registry requires credentials (Basic)"))) }
            if base?.hasPrefix("http://") == true && !endpoint.isLoopback && !client.isInsecure(endpoint) {
                return .failure(Halt(done(.unauthorized, "credentials are not sent over plain HTTP to \(endpoint.host) (allow it with --insecure-registry \(endpoint.host))")))
            }
            return .success(("Basic " + credential.auth, false))
        }
        let schemes = challenges.map(\.scheme).joined(separator: ", ")
        return .failure(Halt(done(.unauthorized, schemes.isEmpty ? "the registry answered 401 without a WWW-Authenticate challenge" : "unsupported authentication scheme \(schemes)")))
    }

    /// A token from the Bearer challenge's realm (`GET realm?service=…&scope=…`, Basic auth with the credential).
    func token(_ challenge: AuthChallenge, scope: String?) async -> Result<String, Halt> {
        guard let realm = challenge.parameters["realm"], let realmURL = URLComponents(string: realm),
              let realmScheme = realmURL.scheme?.lowercased(), realmScheme == "https" || realmScheme == "http", realmURL.host != nil else {
            return .failure(Halt(done(.unauthorized, "the Bearer challenge has no usable realm")))
        }
        var components = realmURL
        var items = components.queryItems ?? []
        if let service = challenge.parameters["service"] { items.append(URLQueryItem(name: "service", value: service)) }
        // The scope asked for, or the one the challenge names (a challenge scope is kept too, as runtimes do).
        for s in Set([scope, challenge.parameters["scope"]].compactMap { $0 as String? }).sorted() {
            items.append(URLQueryItem(name: "scope", value: s))
        }
        components.queryItems = items.isEmpty ? nil : items
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        guard let url = components.string else { return .failure(Halt(done(.unauthorized, "the Bearer challenge has no usable realm"))) }
        let realmHost = (realmURL.host ?? "") + (realmURL.port.map { ":\($0)" } ?? "")
        if credential != nil, realmScheme == "http" {
            let realmEndpoint = RegistryEndpoint(imageDomain: realmHost)
            if !realmEndpoint.isLoopback && !client.isInsecure(realmEndpoint) {
                return .failure(Halt(done(.unauthorized, "the token realm \(realmHost) is plain HTTP; credentials are not sent in cleartext (allow it with --insecure-registry \(realmHost))")))
            }
        }
        let r: HTTPResponse
        do {
            // The token server is trusted as the registry is (same CA settings, same --insecure-registry choice).
            r = try await (transport ?? client.transport(insecure: false)).send(request("GET", url, authorization: credential.map { "Basic " + $0.auth }))
        } catch let error as TransportError {
            return .failure(Halt(transportFailure([TransportError(message: "token server: " + error.message, notSent: error.notSent, cancelled: error.cancelled, kind: error.kind)])))
        } catch {
            return .failure(Halt(done(.unreachable, "token server: \(error)")))
        }
        switch r.status {
        case 200:
            guard case .object(let o)? = try? JSONParser.parse(r.body),
                  let token = [o["token"]?.stringValue, o["access_token"]?.stringValue].compactMap({ $0 }).first(where: { !$0.isEmpty }) else {
                return .failure(Halt(done(.unreachable, "the token server at \(realmHost) answered without a token")))
            }
            return .success(token)
        case 401:
            return .failure(Halt(done(.unauthorized, credential == nil
                ? "the token server at \(realmHost) requires credentials" + registryError(r)
                : "the token server at \(realmHost) rejected \(who)" + registryError(r))))
        case 403:
            return .failure(Halt(done(.denied, "the token server at \(realmHost) refused \(scope ?? "a token") for \(who)" + registryError(r))))
        default:
            return .failure(Halt(unexpected(r, "token request to \(realmHost)")))
        }
    }

    func request(_ method: String, _ url: String, authorization: String?, accept: String? = nil) -> HTTPRequest {
        var headers: [(name: String, value: String)] = [("User-Agent", RegistryClient.userAgent)]
        if let accept { headers.append(("Accept", accept)) }
        if let authorization { headers.append(("Authorization", authorization)) }
        var r = HTTPRequest(method: method, url: url, headers: headers, timeout: client.options.requestTimeout)
        r.maxResponseBytes = Self.maxResponseBytes
        return r
    }

    /// No answer we read (challenge, token, manifest, error) is legitimately larger than the registry's own 4 MiB
    /// manifest limit; a registry streaming more is cut off instead of filling memory.
    static let maxResponseBytes = 4 << 20

    /// Sends a request through the session's transport, following redirects (see `fetch`).
    func send(_ method: String, _ url: String, authorization: String?, accept: String? = nil) async -> Result<HTTPResponse, Halt> {
        do {
            return .success(try await fetch(transport ?? client.transport(insecure: false), method, url, authorization: authorization, accept: accept))
        } catch let error as TransportError {
            return .failure(Halt(transportFailure([error])))
        } catch let halt as Halt {
            return .failure(halt)
        } catch {
            return .failure(Halt(done(.unreachable, "\(error)")))
        }
    }

    /// Sends a request, following up to 5 redirects as a runtime does (registries such as registry.k8s.io redirect
    /// API calls): the `Authorization` header only goes to the same host and port, and never from HTTPS to HTTP.
    /// Throws `TransportError` for a failed transfer and `Halt` for a refused redirect.
    func fetch(_ transport: CurlTransport, _ method: String, _ url: String, authorization: String?, accept: String? = nil) async throws -> HTTPResponse {
        var current = url
        var auth = authorization
        for _ in 0...5 {
            let r = try await transport.send(request(method, current, authorization: auth, accept: accept))
            guard [301, 302, 303, 307, 308].contains(r.status), let location = r.header("location"),
                  let from = URL(string: current), let to = URL(string: location, relativeTo: from)?.absoluteURL,
                  let scheme = to.scheme?.lowercased(), scheme == "https" || scheme == "http" else { return r }
            if from.scheme?.lowercased() == "https" && scheme == "http" {
                throw Halt(done(.unreachable, "\(method) \(Self.display(current)): redirect from HTTPS to plain HTTP refused"))
            }
            if to.host?.lowercased() != from.host?.lowercased() || to.port != from.port { auth = nil }
            current = to.absoluteString
        }
        throw Halt(done(.unreachable, "\(method) \(Self.display(url)): more than 5 redirects"))
    }

    /// A URL without its query (it may carry a signature).
    static func display(_ url: String) -> String { String(url.prefix { $0 != "?" }) }

    func unexpected(_ r: HTTPResponse, _ what: String) -> RegistryCheck {
        done(.unreachable, "\(what) answered HTTP \(r.status)" + registryError(r) + (r.status == 404 ? " (no registry API at \(base ?? endpoint.host))" : ""))
    }

    /// `: CODE: message; …` from the distribution error body `{"errors":[{"code","message"}]}`, or empty.
    func registryError(_ r: HTTPResponse) -> String {
        guard !r.body.isEmpty, r.body.count <= 64 << 10, case .object(let o)? = try? JSONParser.parse(r.body),
              case .array(let errors)? = o["errors"] else { return "" }
        let parts: [String] = errors.prefix(3).compactMap { e in
            let code = e["code"]?.stringValue ?? ""
            let message = e["message"]?.stringValue ?? ""
            let text = [code, message].filter { !$0.isEmpty }.joined(separator: ": ")
            return text.isEmpty ? nil : String(text.prefix(200))
        }
        return parts.isEmpty ? "" : ": " + parts.joined(separator: "; ")
    }
}
