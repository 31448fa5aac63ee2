/// Where a keyring credential came from: a pull secret and the `auths` key in it.
public struct CredentialSource: Sendable, Hashable, Codable {
    public var namespace: String
    public var secretName: String
    /// The key as written in the Secret (before normalization).
    public var registryKey: String

    public init(namespace: String, secretName: String, registryKey: String) {
        self.namespace = namespace
        self.secretName = secretName
        self.registryKey = registryKey
    }
}

/// The kubelet's credential keyring (`BasicDockerKeyring`) for one pod's pull secrets.
///
/// Keys are normalized as the kubelet's `Add` does (scheme dropped, a leading `/v1/` or `/v2/` path reduced,
/// `host[:port][/path]`); lookups return every matching key's credentials, keys in reverse byte order,
/// credentials within a key in insertion order; the Docker Hub fallback (`index.docker.io`) applies only
/// when no key matched.
public struct CredentialKeyring: Sendable {
    public struct Entry: Sendable, Equatable {
        /// The normalized key (`index.docker.io`, `registry.example.com/team`).
        public var key: String
        public var credential: RegistryCredential
        public var source: CredentialSource
    }

    /// One credential the kubelet would try, with why it was chosen.
    public struct Match: Sendable, Equatable {
        public var entry: Entry
        /// `key` for a direct match, `docker-hub-fallback` for the default-registry fallback.
        public var reason: Reason

        public enum Reason: String, Sendable, Codable {
            case key
            case dockerHubFallback = "docker-hub-fallback"
        }
    }

    static let defaultRegistryHost = "index.docker.io"

    private var credentials: [String: [Entry]] = [:]
    /// Normalized keys, unique, reverse-sorted by bytes (the kubelet's lookup order).
    public private(set) var index: [String] = []

    public init() {}

    /// The normalized key for a config key, or nil where the kubelet would drop the entry (URL parse error).
    public static func normalize(_ configKey: String) -> String? {
        var value = configKey
        if !value.hasPrefix("https://") && !value.hasPrefix("http://") { value = "https://" + value }
        let schemeless = value.hasPrefix("https://") ? String(value.dropFirst(8)) : String(value.dropFirst(7))
        guard let url = GoURL.parseSchemeless(schemeless) else { return nil }
        var path = url.path
        if path.hasPrefix("/v2/") || path.hasPrefix("/v1/") { path = String(path.dropFirst(3)) }
        return path.isEmpty || path == "/" ? url.host : url.host + path
    }

    /// Adds one credential; returns false (and adds nothing) when the kubelet would drop the key.
    @discardableResult
    public mutating func add(configKey: String, credential: RegistryCredential, source: CredentialSource) -> Bool {
        guard let key = Self.normalize(configKey) else { return false }
        if credentials[key] == nil {
            // index is reverse-sorted: insert before the first key that sorts below `key`.
            index.insert(key, at: index.firstIndex { utf8Less($0, key) } ?? index.endIndex)
        }
        credentials[key, default: []].append(Entry(key: key, credential: credential, source: source))
        return true
    }

    /// The credentials the kubelet would try for `image` (a normalized repository name such as `docker.io/library/nginx`), in order.
    public func lookup(_ image: String) -> [Match] {
        var out: [Match] = []
        for key in index where Self.urlsMatch(key, image) {
            out += credentials[key, default: []].map { Match(entry: $0, reason: .key) }
        }
        if !out.isEmpty { return out }
        if Self.isDefaultRegistryMatch(image), let hub = credentials[Self.defaultRegistryHost] {
            return hub.map { Match(entry: $0, reason: .dockerHubFallback) }
        }
        return []
    }

    /// The kubelet's `URLsMatchStr(glob, target)`: equal ports, equal label counts, glob per host label, string-prefix path.
    public static func urlsMatch(_ glob: String, _ target: String) -> Bool {
        guard let g = GoURL.parseSchemeless(glob), let t = GoURL.parseSchemeless(target) else { return false }
        let (gh, gp) = g.hostAndPort
        let (th, tp) = t.hostAndPort
        guard gp == tp else { return false }
        let gl = gh.split(separator: ".", omittingEmptySubsequences: false)
        let tl = th.split(separator: ".", omittingEmptySubsequences: false)
        guard gl.count == tl.count, t.path.hasPrefix(g.path) else { return false }
        return zip(gl, tl).allSatisfy { GoGlob.match(String($0), String($1)) }
    }

    /// The kubelet's `isDefaultRegistryMatch`: whether an image without a registry host belongs to Docker Hub.
    public static func isDefaultRegistryMatch(_ image: String) -> Bool {
        let parts = image.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, !first.isEmpty else { return false }
        if parts.count == 1 { return true }
        if first == "docker.io" || first == "index.docker.io" { return true }
        return !first.contains(".") && !first.contains(":")
    }
}
