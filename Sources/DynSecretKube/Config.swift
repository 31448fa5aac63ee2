internal import DynSecretCore
internal import Foundation

/// How to reach and authenticate to one Kubernetes API server.
public struct KubeConfig: Sendable {
    /// The server's base URL, such as `https://127.0.0.1:6443`.
    public var server: String
    /// The namespace of the selected context (or the pod's namespace in-cluster); `default` when none is set.
    public var namespace: String
    /// TLS and proxy settings for the transport.
    public var transport: TransportSettings
    /// Where the bearer token comes from, if any.
    public var credentials: Credentials
    /// A description of where this configuration came from, for messages.
    public var origin: String
    /// Whole-request timeout for ordinary requests (not watches).
    public var requestTimeout: Duration = .seconds(30)

    /// A configuration for `server` (a trailing slash is dropped).
    public init(server: String, namespace: String = "default", transport: TransportSettings = TransportSettings(), credentials: Credentials = .none, origin: String = "explicit") {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.namespace = namespace
        self.transport = transport
        self.credentials = credentials
        self.origin = origin
    }

    /// Where a client's bearer token comes from.
    public enum Credentials: Sendable {
        case none
        /// A fixed token.
        case token(String)
        /// A file read again whenever it changes (projected, rotating service-account tokens).
        case tokenFile(String)
        /// An exec credential plugin.
        case exec(ExecPlugin)
    }
}

/// A configuration problem: one line naming what failed where.
public struct KubeConfigError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Finds and reads Kubernetes client configuration as kubectl does.
public enum KubeConfigLoader {
    /// Loads the configuration: `kubeconfigPath` (`--kubeconfig`) if given; else the files in `KUBECONFIG`
    /// (merged: the first file to set a value wins); else `~/.kube/config`; else the in-cluster configuration.
    /// `environment` defaults to the process environment.
    /// `context` overrides the current context; `namespace` overrides the context's namespace.
    /// When nothing works, the error says why each place failed.
    public static func load(
        kubeconfigPath: String? = nil,
        context: String? = nil,
        namespace: String? = nil,
        environment: [String: String]? = nil,
        inClusterRoot: String = "/var/run/secrets/kubernetes.io/serviceaccount"
    ) throws(KubeConfigError) -> KubeConfig {
        let environment = environment ?? ProcessInfo.processInfo.environment
        var config: KubeConfig
        if let kubeconfigPath {
            config = try fromFiles([kubeconfigPath], context: context, environment: environment)
        } else {
            var reasons: [String] = []
            var found: KubeConfig?
            if let list = environment["KUBECONFIG"], !list.isEmpty {
                let files = list.split(separator: ":").map(String.init).filter { FileManager.default.fileExists(atPath: $0) }
                if files.isEmpty {
                    reasons.append("KUBECONFIG=\(list): no such file")
                } else {
                    found = try fromFiles(files, context: context, environment: environment)
                }
            } else {
                reasons.append("KUBECONFIG is not set")
            }
            if found == nil {
                let home = environment["HOME"] ?? NSHomeDirectory()
                let path = home + "/.kube/config"
                if FileManager.default.fileExists(atPath: path) {
                    found = try fromFiles([path], context: context, environment: environment)
                } else {
                    reasons.append("\(path): no such file")
                }
            }
            if found == nil {
                do {
                    found = try inCluster(environment: environment, root: inClusterRoot)
                } catch {
                    reasons.append("in-cluster: \(error.message)")
                }
            }
            guard let found else {
                throw KubeConfigError("no Kubernetes configuration found: " + reasons.joined(separator: "; "))
            }
            config = found
        }
        if let namespace, !namespace.isEmpty { config.namespace = namespace }
        return config
    }

    /// The in-cluster configuration: `KUBERNETES_SERVICE_HOST`/`PORT`, the service account's token (re-read
    /// when it rotates), CA and namespace under `root`.
    public static func inCluster(environment: [String: String], root: String = "/var/run/secrets/kubernetes.io/serviceaccount") throws(KubeConfigError) -> KubeConfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            throw KubeConfigError("KUBERNETES_SERVICE_HOST is not set")
        }
        guard let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty else {
            throw KubeConfigError("KUBERNETES_SERVICE_PORT is not set")
        }
        let tokenPath = root + "/token"
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw KubeConfigError("\(tokenPath): cannot read the service account token")
        }
        var transport = TransportSettings()
        // As client-go: without the service account's CA the API server cannot be verified, so fail rather
        // than fall back to the system bundle.
        guard let ca = FileManager.default.contents(atPath: root + "/ca.crt") else {
            throw KubeConfigError("\(root)/ca.crt: cannot read the service account CA")
        }
        transport.caPEM = Array(ca)
        applyProxyEnvironment(&transport, server: "https://\(host)", environment: environment)
        let ns = FileManager.default.contents(atPath: root + "/namespace").map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return KubeConfig(server: "https://\(hostPart):\(port)", namespace: ns.flatMap { $0.isEmpty ? nil : $0 } ?? "default",
                          transport: transport, credentials: .tokenFile(tokenPath), origin: "in-cluster")
    }

    /// Reads and merges kubeconfig files (the first file to set a name or the current context wins).
    public static func fromFiles(_ paths: [String], context: String?, environment: [String: String] = [:]) throws(KubeConfigError) -> KubeConfig {
        try merged(try files(paths), context: context, environment: environment)
    }

    /// Reads a kubeconfig held in memory (a member cluster's kubeconfig Secret); `source` names it in errors.
    /// Relative file paths in it are taken as they are.
    public static func fromData(_ data: [UInt8], source: String, context: String? = nil, environment: [String: String] = [:]) throws(KubeConfigError) -> KubeConfig {
        try merged([(data, source, "")], context: context, environment: environment)
    }

    /// The context names of kubeconfig files, sorted.
    public static func contextNames(_ paths: [String]) throws(KubeConfigError) -> [String] {
        var names: Set<String> = []
        for (data, source, _) in try files(paths) {
            let docs: [ManifestDocument]
            do { docs = try ManifestReader.read(data, source: source) } catch { throw KubeConfigError(error.description) }
            for entry in docs.first?.value["contexts"]?.arrayValue ?? [] { if let n = entry["name"]?.stringValue { names.insert(n) } }
        }
        return names.sorted()
    }

    private static func files(_ paths: [String]) throws(KubeConfigError) -> [(data: [UInt8], source: String, dir: String)] {
        var out: [(data: [UInt8], source: String, dir: String)] = []
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KubeConfigError("\(path): cannot read kubeconfig")
            }
            out.append((Array(data), path, (path as NSString).deletingLastPathComponent))
        }
        return out
    }

    private static func merged(_ inputs: [(data: [UInt8], source: String, dir: String)], context: String?, environment: [String: String]) throws(KubeConfigError) -> KubeConfig {
        var clusters: [String: (JSONObject, String)] = [:]
        var users: [String: (JSONObject, String)] = [:]
        var contexts: [String: JSONObject] = [:]
        var current: String?
        let paths = inputs.map(\.source)
        for (data, path, dir) in inputs {
            let docs: [ManifestDocument]
            do { docs = try ManifestReader.read(data, source: path) } catch {
                throw KubeConfigError(error.description)
            }
            guard let root = docs.first?.value.objectValue else { continue }
            if current == nil, let c = root["current-context"]?.stringValue, !c.isEmpty { current = c }
            for entry in root["clusters"]?.arrayValue ?? [] {
                if let name = entry["name"]?.stringValue, clusters[name] == nil, let c = entry["cluster"]?.objectValue { clusters[name] = (c, dir) }
            }
            for entry in root["users"]?.arrayValue ?? [] {
                if let name = entry["name"]?.stringValue, users[name] == nil, let u = entry["user"]?.objectValue { users[name] = (u, dir) }
            }
            for entry in root["contexts"]?.arrayValue ?? [] {
                if let name = entry["name"]?.stringValue, contexts[name] == nil, let c = entry["context"]?.objectValue { contexts[name] = c }
            }
        }
        let where_ = paths.joined(separator: ":")
        guard let contextName = context ?? current else {
            throw KubeConfigError("\(where_): no current-context is set and no --context was given")
        }
        guard let ctx = contexts[contextName] else {
            throw KubeConfigError("\(where_): context \(KubeNames.goQuote(contextName)) not found")
        }
        guard let clusterName = ctx["cluster"]?.stringValue, let (cluster, clusterDir) = clusters[clusterName] else {
            throw KubeConfigError("\(where_): context \(KubeNames.goQuote(contextName)): cluster \(KubeNames.goQuote(ctx["cluster"]?.stringValue ?? "")) not found")
        }
        guard let server = cluster["server"]?.stringValue, !server.isEmpty else {
            throw KubeConfigError("\(where_): cluster \(KubeNames.goQuote(clusterName)): server is not set")
        }
        var transport = TransportSettings()
        transport.insecureSkipVerify = cluster["insecure-skip-tls-verify"] == .bool(true)
        transport.caPEM = try bytes(cluster, dataKey: "certificate-authority-data", fileKey: "certificate-authority", dir: clusterDir, what: "cluster \(clusterName)")
        if transport.insecureSkipVerify && transport.caPEM != nil {
            // kubectl refuses this combination too: the CA would silently not be checked.
            throw KubeConfigError("\(where_): cluster \(KubeNames.goQuote(clusterName)): specifying a root certificates file with the insecure flag is not allowed")
        }
        if let proxy = cluster["proxy-url"]?.stringValue, !proxy.isEmpty {
            transport.proxyURL = proxy
        } else {
            applyProxyEnvironment(&transport, server: server, environment: environment)
        }
        var credentials = KubeConfig.Credentials.none
        if let userName = ctx["user"]?.stringValue, !userName.isEmpty {
            guard let (user, userDir) = users[userName] else {
                throw KubeConfigError("\(where_): context \(KubeNames.goQuote(contextName)): user \(KubeNames.goQuote(userName)) not found")
            }
            let what = "user \(userName)"
            transport.clientCertificatePEM = try bytes(user, dataKey: "client-certificate-data", fileKey: "client-certificate", dir: userDir, what: what)
            transport.clientKeyPEM = try bytes(user, dataKey: "client-key-data", fileKey: "client-key", dir: userDir, what: what)
            if (transport.clientCertificatePEM == nil) != (transport.clientKeyPEM == nil) {
                throw KubeConfigError("\(where_): \(what): client-certificate and client-key must be given together")
            }
            if let token = user["token"]?.stringValue, !token.isEmpty {
                credentials = .token(token)
            } else if let file = user["tokenFile"]?.stringValue, !file.isEmpty {
                credentials = .tokenFile(resolve(file, dir: userDir))
            } else if let exec = user["exec"]?.objectValue {
                credentials = .exec(try ExecPlugin(config: exec, dir: userDir, what: "\(where_): \(what)", environment: environment))
            }
        }
        let ns = ctx["namespace"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        return KubeConfig(server: server, namespace: ns, transport: transport, credentials: credentials, origin: "\(where_) context \(contextName)")
    }

    /// `HTTPS_PROXY` (for https servers) or `HTTP_PROXY`, and `NO_PROXY`, upper or lower case, from `environment`
    /// (kubectl's rules; the transport gets them explicitly rather than libcurl reading the process environment).
    static func applyProxyEnvironment(_ transport: inout TransportSettings, server: String, environment: [String: String]) {
        func env(_ name: String) -> String? {
            let v = environment[name] ?? environment[name.lowercased()]
            return v?.isEmpty == false ? v : nil
        }
        transport.proxyURL = env(server.hasPrefix("https://") ? "HTTPS_PROXY" : "HTTP_PROXY") ?? ""
        transport.noProxy = env("NO_PROXY")
    }

    static func resolve(_ path: String, dir: String) -> String {
        path.hasPrefix("/") || dir.isEmpty ? path : dir + "/" + path
    }

    private static func bytes(_ obj: JSONObject, dataKey: String, fileKey: String, dir: String, what: String) throws(KubeConfigError) -> [UInt8]? {
        if let data = obj[dataKey]?.stringValue, !data.isEmpty {
            guard let decoded = Base64.decode(data) else {
                throw KubeConfigError("\(what): \(dataKey) is not valid base64")
            }
            return decoded
        }
        if let file = obj[fileKey]?.stringValue, !file.isEmpty {
            let path = resolve(file, dir: dir)
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw KubeConfigError("\(what): \(fileKey): cannot read \(path)")
            }
            return Array(contents)
        }
        return nil
    }
}

// Descriptions and mirrors never show tokens or key material, so `print`, `dump` and string interpolation of a
// configuration are safe.
extension KubeConfig.Credentials: CustomStringConvertible, CustomReflectable {
    public var description: String {
        switch self {
        case .none: "none"
        case .token: "token(<redacted>)"
        case .tokenFile(let path): "tokenFile(\(path))"
        case .exec(let plugin): "exec(\(plugin.command))"
        }
    }

    public var customMirror: Mirror { Mirror(self, children: ["kind": description]) }
}

extension TransportSettings: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "TransportSettings(ca: \(caPEM == nil ? "system" : "configured"), insecureSkipVerify: \(insecureSkipVerify), "
            + "clientCertificate: \(clientCertificatePEM != nil), clientKey: \(clientKeyPEM == nil ? "none" : "<redacted>"), proxy: \(proxyURL ?? "environment"))"
    }

    public var customMirror: Mirror { Mirror(self, children: ["description": description]) }
}

extension KubeConfig: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "KubeConfig(server: \(server), namespace: \(namespace), credentials: \(credentials), transport: \(transport), origin: \(origin))"
    }

    public var customMirror: Mirror { Mirror(self, children: ["description": description]) }
}
