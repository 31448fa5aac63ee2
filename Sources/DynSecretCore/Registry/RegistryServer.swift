/// Registry server names as written into a pull secret's `auths` keys.
public enum RegistryServer {
    /// The key the Docker CLI uses for Docker Hub, and the one the kubelet's Docker Hub fallback understands.
    public static let dockerHubKey = "https://index.docker.io/v1/"

    static let dockerHubHosts: Set<String> = ["docker.io", "index.docker.io", "registry-1.docker.io"]

    /// The `auths` key for a server as a user typed it.
    ///
    /// Any other server is kept exactly as typed (scheme, port and path included), as kubectl does.
    /// Docker Hub's names (`docker.io`, `index.docker.io`, `registry-1.docker.io`, with or without scheme,
    /// `/v1/` or `/v2/`) become `https://index.docker.io/v1/`; with an organisation path they become
    /// `docker.io/ORG`, the only form the kubelet matches against `ORG/IMAGE` references.
    public static func authKey(for server: String) throws(ManifestError) -> String {
        try check(server)
        var rest = Substring(server)
        for scheme in ["https://", "http://"] where rest.lowercased().hasPrefix(scheme) {
            rest = rest.dropFirst(scheme.count)
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let host = rest[..<slash].lowercased()
        guard dockerHubHosts.contains(host) else { return server }
        var path = rest[slash...]
        for version in ["/v1", "/v2"] where path == version || path.hasPrefix(version + "/") {
            path = path.dropFirst(version.count)
        }
        let org = path.split(separator: "/").joined(separator: "/")
        return org.isEmpty ? dockerHubKey : "docker.io/" + org
    }

    /// Rejects servers that the kubelet could not parse into a keyring entry (it would drop them silently).
    static func check(_ server: String) throws(ManifestError) {
        let usage = "a registry server is HOST[:PORT][/PATH], optionally with http:// or https://"
        guard !server.isEmpty else { throw ManifestError("registry server is empty; " + usage) }
        if server.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F || "?#\\\"<>{}|^`".unicodeScalars.contains($0) }) {
            throw ManifestError("invalid registry server \(KubeNames.goQuote(server)): \(usage)")
        }
        var rest = Substring(server)
        if let r = rest.firstRange(of: "://") {
            let scheme = rest[..<r.lowerBound].lowercased()
            guard scheme == "https" || scheme == "http" else {
                throw ManifestError("invalid registry server \(KubeNames.goQuote(server)): scheme must be http or https")
            }
            rest = rest[r.upperBound...]
        }
        let hostPort = rest.prefix { $0 != "/" }
        if hostPort.contains("@") {
            // Not quoted: the part before '@' is likely a password.
            throw ManifestError("invalid registry server: credentials (USER:PASSWORD@) do not belong in the server name")
        }
        var host = hostPort
        if let colon = hostPort.lastIndex(of: ":"), !hostPort.hasSuffix("]") {
            let port = hostPort[hostPort.index(after: colon)...]
            guard !port.isEmpty, port.allSatisfy(\.isASCIIDigit), let p = Int(port), p > 0, p < 65536 else {
                throw ManifestError("invalid registry server \(KubeNames.goQuote(server)): invalid port")
            }
            host = hostPort[..<colon]
        }
        guard !host.isEmpty else { throw ManifestError("invalid registry server \(KubeNames.goQuote(server)): no host; \(usage)") }
    }
}
