/// A credential dynsecret mints itself (`spec.credentials[]` of a policy): a name, the provider that yields it, and
/// when to refresh it.
public struct MintedCredentialSource: Sendable, Equatable {
    /// A kubelet credential provider plugin, run as the kubelet runs it.
    public struct Exec: Sendable, Equatable {
        public var command: String
        public var args: [String]
        /// Extra environment, in order.
        public var env: [(name: String, value: String)]
        /// The image the plugin is asked about (the kubelet asks with the image being pulled).
        public var image: String
        public var apiVersion: String
        /// The plugin is stopped (with what it started) past this.
        public var timeout: Duration
        /// The lifetime of an answer without `cacheDuration` (the kubelet's `defaultCacheDuration`).
        public var defaultCacheDuration: Duration

        public init(command: String, args: [String] = [], env: [(name: String, value: String)] = [], image: String,
                    apiVersion: String = KubeletCredentialProvider.v1, timeout: Duration = .seconds(10), defaultCacheDuration: Duration = .seconds(600)) {
            self.command = command
            self.args = args
            self.env = env
            self.image = image
            self.apiVersion = apiVersion
            self.timeout = timeout
            self.defaultCacheDuration = defaultCacheDuration
        }

        public static func == (a: Exec, b: Exec) -> Bool {
            a.command == b.command && a.args == b.args && a.env.map(\.name) == b.env.map(\.name) && a.env.map(\.value) == b.env.map(\.value)
                && a.image == b.image && a.apiVersion == b.apiVersion && a.timeout == b.timeout && a.defaultCacheDuration == b.defaultCacheDuration
        }
    }

    /// Amazon ECR: `GetAuthorizationToken` in `region`, signed with the AWS default credential chain.
    public struct ECR: Sendable, Equatable {
        public var region: String
        /// Registries (account IDs) to get tokens for; empty: the caller's account.
        public var registryIDs: [String]

        public init(region: String, registryIDs: [String] = []) {
            self.region = region
            self.registryIDs = registryIDs
        }
    }

    /// Google Artifact Registry / Container Registry: an OAuth 2.0 access token (service-account key, external
    /// account, or the metadata server) for `registries`.
    public struct Google: Sendable, Equatable {
        /// Registry hosts the token is written for (`us-docker.pkg.dev`, `gcr.io`, …).
        public var registries: [String]

        public init(registries: [String]) { self.registries = registries }
    }

    public enum Provider: Sendable, Equatable {
        case exec(Exec)
        case ecr(ECR)
        case google(Google)

        /// `exec`, `ecr` or `google`.
        public var kind: String {
            switch self {
            case .exec: "exec"
            case .ecr: "ecr"
            case .google: "google"
            }
        }
    }

    /// The username of an ECR token in a pull secret.
    public static let ecrUsername = "AWS"
    /// The username of a Google access token in a pull secret.
    public static let googleUsername = "oauth2accesstoken"

    /// When a credential is minted again.
    public enum Refresh: Sendable, Equatable {
        /// Once this fraction of its lifetime has passed (default 0.5).
        case atFraction(Double)
        /// This long before it expires.
        case before(Duration)
    }

    /// The shortest time between two mints of one credential with a lifetime, whatever the rule says.
    public static let minimumInterval: Duration = .seconds(1)
    /// When a credential reported with no lifetime left (an expiry already past: clock skew, or a server answering a
    /// fixed date) is minted again: it is used meanwhile, and never minted in a loop.
    public static let noLifetimeInterval: Duration = .seconds(30)

    public var name: String
    public var provider: Provider
    public var refresh: Refresh

    public init(name: String, provider: Provider, refresh: Refresh = .atFraction(0.5)) {
        self.name = name
        self.provider = provider
        self.refresh = refresh
    }

    /// When to mint again after a mint that yields `lifetime`: the refresh rule, never sooner than
    /// `minimumInterval`; `noLifetimeInterval` for a lifetime of 0 or less; half the lifetime when `before` is not
    /// shorter than the lifetime (the rule cannot be honoured, and minting at the minimum interval would be a loop).
    public func refreshDelay(lifetime: Duration) -> Duration {
        guard lifetime > .zero else { return Self.noLifetimeInterval }
        let d: Duration
        switch refresh {
        case .atFraction(let f): d = lifetime * f
        case .before(let b): d = b < lifetime ? lifetime - b : lifetime / 2
        }
        return max(d, Self.minimumInterval)
    }
}

/// A minted credential: the registries it covers and how long it is valid.
public struct MintedCredential: Sendable, Equatable {
    /// `auths` keys (registry hosts, host/paths or globs, as the provider gives them) and their credentials.
    public var auths: [String: RegistryCredential]
    /// How long it may be used from when it was minted.
    public var lifetime: Duration
    /// Where the credential came from (`environment`, `web identity (AWS_ROLE_ARN)`, `metadata server`, …; empty
    /// for a plugin): for `credentials mint` and logs, never a value.
    public var origin: String

    public init(auths: [String: RegistryCredential], lifetime: Duration, origin: String = "") {
        self.auths = auths
        self.lifetime = lifetime
        self.origin = origin
    }

    /// The source a rule with `source.credentials: names` replicates: one `kubernetes.io/dockerconfigjson` holding
    /// every registry of the credentials (a later credential's entry wins for one key). Nil until every one of them
    /// has been minted, so a copy never loses the registries of a credential that is late.
    public static func source(_ names: [String], _ minted: [String: MintedCredential]) -> SourceObject? {
        var config = DockerConfigJSON()
        for n in names {
            guard let m = minted[n] else { return nil }
            for (key, credential) in m.auths { config.set(credential, for: key) }
        }
        let secret = Secret(metadata: ObjectMeta(name: ReplicationRule.Source.mintedName(names), namespace: ""), type: SecretType.dockerConfigJSON,
                            data: [".dockerconfigjson": config.bytes])
        return SourceObject(secret)
    }
}

/// The kubelet's credential provider exec protocol (`credentialprovider.kubelet.k8s.io`).
public enum KubeletCredentialProvider {
    public static let v1 = "credentialprovider.kubelet.k8s.io/v1"
    /// The versions the kubelet speaks.
    public static let apiVersions = [v1, "credentialprovider.kubelet.k8s.io/v1beta1", "credentialprovider.kubelet.k8s.io/v1alpha1"]
    public static let cacheKeyTypes = ["Image", "Registry", "Global"]

    /// The `CredentialProviderRequest` written to the plugin's stdin.
    public static func request(image: String, apiVersion: String) -> [UInt8] {
        GoJSONWriter.compact(.object(JSONObject([
            ("kind", .string("CredentialProviderRequest")), ("apiVersion", .string(apiVersion)), ("image", .string(image)),
        ])))
    }

    /// Reads a `CredentialProviderResponse` as the kubelet does: the kind and the request's `apiVersion`, a known
    /// `cacheKeyType`, a valid `cacheDuration` (absent: `defaultCacheDuration`), and `auth` entries with a username
    /// or password. Anything else is an error (and the response is discarded). Messages never quote a value.
    public static func response(_ bytes: [UInt8], apiVersion: String, defaultCacheDuration: Duration) throws(ManifestError) -> MintedCredential {
        let value: JSONValue
        do { value = try JSONParser.parse(bytes) } catch { throw ManifestError("output is not a JSON CredentialProviderResponse") }
        guard case .object(let o) = value else { throw ManifestError("output is not a JSON object") }
        guard o["kind"]?.stringValue == "CredentialProviderResponse" else { throw ManifestError("kind is not CredentialProviderResponse", field: "kind") }
        guard let v = o["apiVersion"]?.stringValue, v == apiVersion else {
            throw ManifestError("apiVersion \(KubeNames.goQuote(o["apiVersion"]?.stringValue ?? "")) does not match the request's \(apiVersion)", field: "apiVersion")
        }
        guard let keyType = o["cacheKeyType"]?.stringValue, cacheKeyTypes.contains(keyType) else {
            throw ManifestError("cacheKeyType \(KubeNames.goQuote(o["cacheKeyType"]?.stringValue ?? "")) is not one of Image, Registry, Global", field: "cacheKeyType")
        }
        var lifetime = defaultCacheDuration
        switch o["cacheDuration"] {
        case nil, .null?: break
        case .string(let s)?:
            guard let d = GoDuration.parse(s, allowZero: true) else { throw ManifestError("cacheDuration \(KubeNames.goQuote(s)) is not a duration", field: "cacheDuration") }
            lifetime = d
        default: throw ManifestError("cacheDuration is not a string", field: "cacheDuration")
        }
        var auths: [String: RegistryCredential] = [:]
        switch o["auth"] {
        case nil, .null?: break
        case .object(let a)?:
            for m in a.members {
                guard case .object(let entry) = m.value else { throw ManifestError("expected an object", field: "auth[\(m.key)]") }
                let user = entry["username"]?.stringValue ?? "", password = entry["password"]?.stringValue ?? ""
                guard !m.key.isEmpty, !(user.isEmpty && password.isEmpty) else { throw ManifestError("no username or password", field: "auth[\(m.key)]") }
                auths[m.key] = RegistryCredential(username: user, password: password)
            }
        default: throw ManifestError("auth is not an object", field: "auth")
        }
        guard !auths.isEmpty else { throw ManifestError("no credentials in auth", field: "auth") }
        return MintedCredential(auths: auths, lifetime: lifetime)
    }
}

extension MintedCredentialSource {
    /// Most credentials a policy declares.
    static let maxCredentials = 100

    /// Decodes `spec.credentials`: each a name (DNS label, unique), exactly one provider, and an optional `refresh`.
    static func decodeList(_ spec: FieldReader) throws(ManifestError) -> [MintedCredentialSource] {
        guard let values = try spec.array("credentials") else { return [] }
        if values.count > maxCredentials { throw ManifestError("too many credentials: \(values.count), at most \(maxCredentials)", field: spec.child("credentials")) }
        var out: [MintedCredentialSource] = []
        for (i, v) in values.enumerated() {
            let path = spec.child("credentials") + "[\(i)]"
            guard case .object(let o) = v else { throw ManifestError("expected object, got \(v.typeName)", field: path) }
            let r = FieldReader(o, path: path)
            try ReplicationPolicy.rejectUnknown(r, ["name", "exec", "ecr", "google", "refresh"])
            guard let name = try r.string("name"), !name.isEmpty else { throw ManifestError("required value", field: r.child("name")) }
            if let p = KubeNames.dns1123LabelProblems(name).first { throw ManifestError(p, field: r.child("name")) }
            if out.contains(where: { $0.name == name }) { throw ManifestError("duplicate credential name \(KubeNames.goQuote(name))", field: r.child("name")) }
            let given = ["exec", "ecr", "google"].filter { o[$0] != nil && o[$0] != .null }
            guard given.count == 1 else {
                throw ManifestError(given.isEmpty ? "required value: give exec, ecr or google" : "\(given.joined(separator: " and ")) are mutually exclusive",
                                    field: r.child(given.last ?? "exec"))
            }
            let provider: Provider
            switch given[0] {
            case "ecr": provider = .ecr(try decodeECR(r))
            case "google": provider = .google(try decodeGoogle(r))
            default: provider = .exec(try decodeExec(r))
            }
            var refresh = Refresh.atFraction(0.5)
            if let ro = try r.object("refresh") {
                let rr = FieldReader(ro, path: r.child("refresh"))
                try ReplicationPolicy.rejectUnknown(rr, ["before", "atFraction"])
                switch (ro["before"], ro["atFraction"]) {
                case (nil, nil): throw ManifestError("required value: give before or atFraction", field: rr.child("before"))
                case (.some, .some): throw ManifestError("before and atFraction are mutually exclusive", field: rr.child("atFraction"))
                case (.some, nil):
                    let text = try rr.string("before") ?? ""
                    guard let d = GoDuration.parse(text) else { throw ManifestError("\(KubeNames.goQuote(text)) is not a duration (e.g. 30m)", field: rr.child("before")) }
                    refresh = .before(d)
                case (nil, .some(let v)):
                    guard case .number(let n) = v, let f = Double(n), f > 0, f < 1 else {
                        throw ManifestError("must be a number between 0 and 1 (exclusive)", field: rr.child("atFraction"))
                    }
                    refresh = .atFraction(f)
                }
            }
            out.append(MintedCredentialSource(name: name, provider: provider, refresh: refresh))
        }
        return out
    }

    static func decodeExec(_ r: FieldReader) throws(ManifestError) -> Exec {
            guard let e = try r.object("exec") else { throw ManifestError("expected object", field: r.child("exec")) }
            let x = FieldReader(e, path: r.child("exec"))
            try ReplicationPolicy.rejectUnknown(x, ["command", "args", "env", "image", "apiVersion", "timeout", "defaultCacheDuration"])
            guard let command = try x.string("command"), !command.isEmpty else { throw ManifestError("required value", field: x.child("command")) }
            guard let image = try x.string("image"), !image.isEmpty else {
                throw ManifestError("required value: the image the plugin is asked about (as the kubelet asks with the image it pulls)", field: x.child("image"))
            }
            let apiVersion = try x.string("apiVersion") ?? KubeletCredentialProvider.v1
            guard KubeletCredentialProvider.apiVersions.contains(apiVersion) else {
                throw ManifestError("unsupported value \(KubeNames.goQuote(apiVersion)): supported values: \(KubeletCredentialProvider.apiVersions.map { KubeNames.goQuote($0) }.joined(separator: ", "))", field: x.child("apiVersion"))
            }
            var env: [(name: String, value: String)] = []
            for (j, item) in (try x.array("env") ?? []).enumerated() {
                let field = x.child("env") + "[\(j)]"
                guard case .object(let eo) = item else { throw ManifestError("expected object, got \(item.typeName)", field: field) }
                let er = FieldReader(eo, path: field)
                try ReplicationPolicy.rejectUnknown(er, ["name", "value"])
                guard let n = try er.string("name"), !n.isEmpty else { throw ManifestError("required value", field: er.child("name")) }
                env.append((n, try er.string("value") ?? ""))
            }
            func duration(_ key: String, _ fallback: Duration) throws(ManifestError) -> Duration {
                guard let text = try x.string(key) else { return fallback }
                guard let d = GoDuration.parse(text) else { throw ManifestError("\(KubeNames.goQuote(text)) is not a duration (e.g. 10s, 5m, 12h)", field: x.child(key)) }
                return d
            }
            return Exec(command: command, args: try x.stringArray("args"), env: env, image: image, apiVersion: apiVersion,
                        timeout: try duration("timeout", .seconds(10)), defaultCacheDuration: try duration("defaultCacheDuration", .seconds(600)))
    }

    static func decodeECR(_ r: FieldReader) throws(ManifestError) -> ECR {
        guard let e = try r.object("ecr") else { throw ManifestError("expected object", field: r.child("ecr")) }
        let x = FieldReader(e, path: r.child("ecr"))
        try ReplicationPolicy.rejectUnknown(x, ["region", "registryIds"])
        guard let region = try x.string("region"), !region.isEmpty else { throw ManifestError("required value", field: x.child("region")) }
        guard isAWSRegion(region) else { throw ManifestError("invalid value \(KubeNames.goQuote(region)): not an AWS region (e.g. us-east-1)", field: x.child("region")) }
        let ids = try x.stringArray("registryIds")
        for (i, id) in ids.enumerated() where id.count != 12 || !id.allSatisfy({ $0.isASCII && $0.isNumber }) {
            throw ManifestError("invalid value \(KubeNames.goQuote(id)): a registry ID is a 12-digit AWS account ID", field: x.child("registryIds") + "[\(i)]")
        }
        return ECR(region: region, registryIDs: ids)
    }

    static func decodeGoogle(_ r: FieldReader) throws(ManifestError) -> Google {
        guard let g = try r.object("google") else { throw ManifestError("expected object", field: r.child("google")) }
        let x = FieldReader(g, path: r.child("google"))
        try ReplicationPolicy.rejectUnknown(x, ["registries"])
        let registries = try x.stringArray("registries")
        guard !registries.isEmpty else { throw ManifestError("required value: the registry hosts (e.g. us-docker.pkg.dev, gcr.io)", field: x.child("registries")) }
        for (i, host) in registries.enumerated() where !isRegistryHost(host) {
            throw ManifestError("invalid value \(KubeNames.goQuote(host)): a registry host name (e.g. us-docker.pkg.dev)", field: x.child("registries") + "[\(i)]")
        }
        return Google(registries: registries)
    }

    /// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-5`: lowercase words joined by
    /// dashes, ending in a number.
    public static func isAWSRegion(_ s: String) -> Bool {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, let last = parts.last, !last.isEmpty, last.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
        return parts.dropLast().allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isLowercase } }
    }

    /// A DNS host name, optionally with a port: what a Google registry key is.
    public static func isRegistryHost(_ s: String) -> Bool {
        let hostPort = s.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        if hostPort.count == 2, !(hostPort[1].count <= 5 && !hostPort[1].isEmpty && hostPort[1].allSatisfy { $0.isASCII && $0.isNumber }) { return false }
        let host = String(hostPort[0])
        return (host.contains(".") || host == "localhost") && KubeNames.dns1123SubdomainProblems(host).isEmpty
    }
}
