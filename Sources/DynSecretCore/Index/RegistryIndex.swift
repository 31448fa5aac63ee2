/// Which pull secrets cover which registries, per namespace, as the kubelet would use them.
///
/// One malformed Secret is recorded in `problems` and skipped; it never stops the rest.
public struct RegistryIndex: Sendable {
    /// One pull secret's entry for a registry key.
    public struct Holder: Sendable, Equatable, Codable {
        public var secret: String
        /// The key as written in the Secret.
        public var configKey: String
    }

    /// A malformed pull secret, by name; the message never holds secret values.
    public struct Problem: Sendable, Equatable, Codable {
        public var namespace: String
        public var name: String
        public var message: String
        public var source: String?
        public var document: Int?
    }

    /// namespace → normalized key → holders, in input order.
    public private(set) var namespaces: [String: [String: [Holder]]] = [:]
    public private(set) var problems: [Problem] = []
    /// Secrets that are pull secrets, per namespace, with their entries, in input order (for `which`).
    private var pullSecrets: [String: [String: [(key: String, credential: RegistryCredential)]]] = [:]
    public private(set) var secretCount = 0
    /// Normalized keys by config key: a cluster has few distinct registries and many Secrets.
    private var normalized: [String: String?] = [:]

    /// Whether credentials are kept for `lookup` (needed by `which`, not by a plain listing).
    private var keepCredentials = true

    public init(keepCredentials: Bool = true) {
        self.keepCredentials = keepCredentials
    }

    /// Appends everything of `other` after this index's content (for indexes built over consecutive input chunks).
    public mutating func merge(_ other: RegistryIndex) {
        for (ns, keys) in other.namespaces {
            for (key, holders) in keys { namespaces[ns, default: [:]][key, default: []] += holders }
        }
        problems += other.problems
        for (ns, secrets) in other.pullSecrets {
            pullSecrets[ns, default: [:]].merge(secrets) { _, new in new }
        }
        secretCount += other.secretCount
    }

    /// Adds a Secret; Secrets of other types are ignored.
    public mutating func add(_ secret: Secret, defaultNamespace: String, source: String? = nil, document: Int? = nil) {
        let namespace = secret.metadata.namespace ?? defaultNamespace
        let name = secret.metadata.name ?? ""
        let entries: [(key: String, credential: RegistryCredential)]
        do {
            guard let e = try PullSecret.entries(of: secret) else { return }
            entries = e
        } catch {
            problems.append(Problem(namespace: namespace, name: name,
                                    message: (error.field.map { "\($0): " } ?? "") + error.message, source: source, document: document))
            return
        }
        secretCount += 1
        if keepCredentials { pullSecrets[namespace, default: [:]][name] = entries }
        for (configKey, _) in entries {
            let key: String?
            if let cached = normalized[configKey] {
                key = cached
            } else {
                key = CredentialKeyring.normalize(configKey)
                normalized[configKey] = key
            }
            guard let key else { continue }
            namespaces[namespace, default: [:]][key, default: []].append(Holder(secret: name, configKey: configKey))
        }
    }

    /// Records a Secret that could not even be decoded.
    public mutating func addProblem(namespace: String, name: String, message: String, source: String?, document: Int?) {
        problems.append(Problem(namespace: namespace, name: name, message: message, source: source, document: document))
    }

    /// Keys of a namespace in the kubelet's lookup order (reverse byte order).
    public func keys(in namespace: String) -> [String] {
        (namespaces[namespace] ?? [:]).keys.sorted { utf8Less($1, $0) }
    }

    /// Whether `name` is a known, well-formed pull secret in `namespace` (always false with `keepCredentials: false`).
    public func hasPullSecret(_ name: String, in namespace: String) -> Bool {
        pullSecrets[namespace]?[name] != nil
    }

    /// The pull secrets of `namespace` (other than `excluding`) whose keys would match `image` if the pod or its
    /// ServiceAccount listed them, by name, each with the key that matches: the hint when nothing the pod lists does.
    public func candidates(image: ImageReference, namespace: String, excluding: [String]) -> [PullSecretCandidate] {
        PullSecretCandidate.find(image: image, among: (pullSecrets[namespace] ?? [:]).filter { !excluding.contains($0.key) }, namespace: namespace)
    }

    /// The credentials the kubelet would try for `image` with these pull secrets (a pod's, in order).
    public func lookup(image: ImageReference, namespace: String, pullSecrets names: [String]) -> [CredentialKeyring.Match] {
        var keyring = CredentialKeyring()
        for name in names {
            for (key, credential) in (pullSecrets[namespace]?[name] ?? []).sorted(by: { utf8Less($0.key, $1.key) }) {
                keyring.add(configKey: key, credential: credential, source: CredentialSource(namespace: namespace, secretName: name, registryKey: key))
            }
        }
        return keyring.lookup(image.name)
    }
}

/// A pull secret the pod does not list that has a key for the image: listing it would cover the image.
public struct PullSecretCandidate: Sendable, Equatable {
    public var secret: String
    /// The matching key as the Secret writes it.
    public var configKey: String

    /// The exact entry to add to the pod's (or its ServiceAccount's) `imagePullSecrets`.
    public var imagePullSecretsEntry: String { "{name: \(secret)}" }

    /// Each Secret of `secrets` (name → entries) with a key that matches `image` (not merely the Docker Hub
    /// fallback), in name order.
    static func find(image: ImageReference, among secrets: [String: [(key: String, credential: RegistryCredential)]], namespace: String) -> [PullSecretCandidate] {
        var out: [PullSecretCandidate] = []
        for name in secrets.keys.sorted(by: utf8Less) {
            var keyring = CredentialKeyring()
            for (key, credential) in secrets[name]! {
                keyring.add(configKey: key, credential: credential, source: CredentialSource(namespace: namespace, secretName: name, registryKey: key))
            }
            if let match = keyring.lookup(image.name).first(where: { $0.reason == .key }) {
                out.append(PullSecretCandidate(secret: name, configKey: match.entry.source.registryKey))
            }
        }
        return out
    }
}
