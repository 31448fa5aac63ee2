/// Whether a namespace's findings deny a request or only warn.
public enum AdmissionMode: String, Sendable, CaseIterable {
    /// Allow, with the findings as warnings (the default: safe to roll out).
    case warn
    /// Deny requests with error findings; warnings still pass as warnings.
    case enforce
}

/// What the webhook checks and where it enforces.
public struct AdmissionPolicy: Sendable, Equatable {
    /// Registry globs (kubelet key syntax) whose uncovered images are errors, as `validate --private-registry`.
    public var privateRegistries: [String] = []
    /// The mode of namespaces that do not set the `dynsecret.io/admission` label.
    public var defaultMode: AdmissionMode = .warn
    /// Namespaces enforced whatever their label says (the policy setting).
    public var enforceNamespaces: Set<String> = []
    /// Namespaces never reviewed: the system namespaces, and the webhook's own (added by the command).
    public var excludeNamespaces: Set<String> = AdmissionPolicy.systemNamespaces

    /// The namespace label that selects the mode (`enforce` or `warn`).
    public static let modeLabel = "dynsecret.io/admission"
    public static let systemNamespaces: Set<String> = ["kube-system", "kube-public", "kube-node-lease"]

    public init() {}

    /// Reads an `AdmissionPolicy` document (`apiVersion: dynsecret.io/v1alpha1`): `privateRegistries`, `mode`,
    /// `enforceNamespaces`, `excludeNamespaces` (replacing the system namespaces when given).
    public static func decode(_ value: JSONValue) throws(ManifestError) -> AdmissionPolicy {
        guard case .object(let o) = value else { throw ManifestError("expected an AdmissionPolicy object, got \(value.typeName)") }
        guard o["apiVersion"]?.stringValue == "dynsecret.io/v1alpha1" else { throw ManifestError("expected apiVersion dynsecret.io/v1alpha1", field: "apiVersion") }
        guard o["kind"]?.stringValue == "AdmissionPolicy" else { throw ManifestError("expected kind AdmissionPolicy", field: "kind") }
        var policy = AdmissionPolicy()
        for key in o.keys where !["apiVersion", "kind", "metadata", "privateRegistries", "mode", "enforceNamespaces", "excludeNamespaces"].contains(key) {
            throw ManifestError("unknown field \(KubeNames.goQuote(key))", field: key)
        }
        func strings(_ key: String) throws(ManifestError) -> [String]? {
            guard let v = o[key], v != .null else { return nil }
            guard case .array(let a) = v else { throw ManifestError("expected a list of strings, got \(v.typeName)", field: key) }
            var out: [String] = []
            for (i, item) in a.enumerated() {
                guard let s = item.stringValue, !s.isEmpty else { throw ManifestError("expected a non-empty string", field: "\(key)[\(i)]") }
                out.append(s)
            }
            return out
        }
        if let globs = try strings("privateRegistries") {
            for (i, g) in globs.enumerated() where CredentialKeyring.normalize(g) == nil {
                throw ManifestError("not a registry host[:port][/path] glob", field: "privateRegistries[\(i)]")
            }
            policy.privateRegistries = globs
        }
        if let m = o["mode"] {
            guard let s = m.stringValue, let mode = AdmissionMode(rawValue: s) else { throw ManifestError("expected warn or enforce", field: "mode") }
            policy.defaultMode = mode
        }
        if let e = try strings("enforceNamespaces") { policy.enforceNamespaces = Set(e) }
        if let e = try strings("excludeNamespaces") { policy.excludeNamespaces = Set(e) }
        return policy
    }

    /// The mode of a namespace with these labels (nil: not known yet).
    public func mode(namespace: String, labels: [String: String]?) -> AdmissionMode {
        if enforceNamespaces.contains(namespace) { return .enforce }
        return labels?[Self.modeLabel].flatMap(AdmissionMode.init(rawValue:)) ?? defaultMode
    }
}

/// What admission keeps of one pull-secret Secret: its type and registry keys, or why the kubelet cannot decode it.
/// Credentials are not kept (coverage needs only the keys).
public struct AdmissionPullSecret: Sendable {
    let check: SecretCheck

    /// Reads a Secret object as the kubelet reads a pull secret; nil when it is not a Secret.
    public init?(_ value: JSONValue) {
        guard case .object(let o) = value, o["kind"] == nil || o["kind"]?.stringValue == "Secret" else { return nil }
        var object = o
        object["kind"] = .string("Secret")
        object["apiVersion"] = .string("v1")
        let namespace = o["metadata"]?["namespace"]?.stringValue ?? ""
        var ignored: [Finding] = []
        var check = Validator(options: ValidationOptions(now: 0), inspector: nil)
            .checkSecret(object, namespace: namespace, location: Location(fieldPrefix: ""), into: &ignored)
        guard check.secret != nil else { return nil }
        check.secret?.data = [:]
        check.secret?.stringData = [:]
        check.pullEntries = check.pullEntries?.map { ($0.key, RegistryCredential(username: "", password: "")) }
        self.check = check
    }

    /// Set when the kubelet cannot decode the payload (every pull of a pod using it fails); never holds a value.
    public var malformed: String? { check.pullError }
    /// The registry keys as the Secret writes them, nil when the kubelet does not read it as a pull secret.
    public var registryKeys: [String]? { check.pullEntries?.map(\.key) }
}

/// The cluster as admission sees it: caches that answer at once, never a request to the API server.
public protocol AdmissionState: Sendable {
    /// True once every cache has held a complete list; until then requests are allowed with a warning.
    var hasSynced: Bool { get }
    /// A pull-secret-typed Secret (only those are cached).
    func pullSecret(namespace: String, name: String) -> AdmissionPullSecret?
    /// The namespace's pull secrets by name (for "would be covered by" hints).
    func pullSecrets(namespace: String) -> [String: AdmissionPullSecret]
    func serviceAccount(namespace: String, name: String) -> ServiceAccount?
    /// The namespace's labels, nil when the namespace is not known.
    func namespaceLabels(_ namespace: String) -> [String: String]?
}

/// An `AdmissionState` held in dictionaries (tests, benchmarks, and a snapshot of the caches).
public struct AdmissionSnapshot: AdmissionState {
    public var hasSynced = true
    /// "namespace/name" keys.
    public var secrets: [String: AdmissionPullSecret] = [:]
    public var serviceAccounts: [String: ServiceAccount] = [:]
    public var namespaces: [String: [String: String]] = [:]

    public init() {}

    /// Adds a Secret (pull-secret types only, as the informer's field selector keeps), a ServiceAccount or a Namespace.
    public mutating func add(_ object: JSONValue) {
        let ns = object["metadata"]?["namespace"]?.stringValue ?? ""
        let name = object["metadata"]?["name"]?.stringValue ?? ""
        switch object["kind"]?.stringValue {
        case "Secret":
            let type = object["type"]?.stringValue ?? ""
            guard type == SecretType.dockerConfigJSON || type == SecretType.dockercfg, let s = AdmissionPullSecret(object) else { return }
            secrets[ns + "/" + name] = s
        case "ServiceAccount":
            if let sa = try? ServiceAccount.decode(object).serviceAccount { serviceAccounts[ns + "/" + name] = sa }
        case "Namespace":
            var labels: [String: String] = [:]
            for m in object["metadata"]?["labels"]?.objectValue?.members ?? [] { labels[m.key] = m.value.stringValue ?? "" }
            namespaces[name] = labels
        default:
            break
        }
    }

    public func pullSecret(namespace: String, name: String) -> AdmissionPullSecret? { secrets[namespace + "/" + name] }
    public func pullSecrets(namespace: String) -> [String: AdmissionPullSecret] {
        var out: [String: AdmissionPullSecret] = [:]
        for (k, v) in secrets where k.hasPrefix(namespace + "/") { out[String(k.dropFirst(namespace.count + 1))] = v }
        return out
    }
    public func serviceAccount(namespace: String, name: String) -> ServiceAccount? { serviceAccounts[namespace + "/" + name] }
    public func namespaceLabels(_ namespace: String) -> [String: String]? { namespaces[namespace] }
}

/// The coverage lookup over admission state.
struct ClusterLookup<State: AdmissionState>: CoverageLookup {
    let state: State
    // Only pull-secret types are cached (field selector on type): a Secret of another type reads as not found.
    var scope: String { "the cluster's pull secrets" }
    var notFound: String { "not found or not of a pull-secret type" }
    func pullSecret(_ namespace: String, _ name: String) -> SecretCheck? { state.pullSecret(namespace: namespace, name: name)?.check }
    func serviceAccount(_ namespace: String, _ name: String) -> ServiceAccount? { state.serviceAccount(namespace: namespace, name: name) }
    func candidates(_ image: ImageReference, _ namespace: String) -> [PullSecretCandidate] {
        var usable: [String: [(key: String, credential: RegistryCredential)]] = [:]
        for (name, s) in state.pullSecrets(namespace: namespace) where s.check.pullError == nil {
            if let e = s.check.pullEntries { usable[name] = e }
        }
        return PullSecretCandidate.find(image: image, among: usable, namespace: namespace)
    }
}

/// Decides an `AdmissionRequest`: the `validate` rules (same ids, same coverage code) over the reviewed object, with
/// the pod's pull secrets and ServiceAccount read from `AdmissionState`. Pure and synchronous.
///
/// Reviewed: Pods and the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers,
/// Jobs and CronJobs (image coverage); Secrets of the pull-secret types (payload rules); ServiceAccounts (their
/// `imagePullSecrets` must exist and decode). Only CREATE and UPDATE; an UPDATE whose pod specs did not change is
/// allowed without a check (scaling, status, labels). Error findings deny in `enforce` namespaces; every error and
/// warning finding is a warning otherwise (notes are not shown).
public struct AdmissionReviewer: Sendable {
    public var policy: AdmissionPolicy
    private let validator: Validator

    public init(policy: AdmissionPolicy) {
        self.policy = policy
        var options = ValidationOptions(now: 0)
        options.privateRegistries = policy.privateRegistries
        validator = Validator(options: options, inspector: nil)
    }

    static let workloadGroups: [String: String] = [
        "Pod": "", "ReplicationController": "", "Deployment": "apps", "StatefulSet": "apps", "DaemonSet": "apps",
        "ReplicaSet": "apps", "Job": "batch", "CronJob": "batch",
    ]

    /// What a request leads to, before it becomes a response: the findings and the namespace's mode.
    public struct Outcome: Sendable {
        /// Why nothing was checked (`excluded`, `not-synced`, `unchanged`, `ignored-kind`, `operation`), or nil.
        public var skipped: String?
        public var mode: AdmissionMode
        public var findings: [Finding]
        public var response: AdmissionResponse
    }

    /// Answers `request`.
    public func review(_ request: AdmissionRequest, state: some AdmissionState) -> AdmissionResponse {
        decide(request, state: state).response
    }

    /// Answers `request`, with what the answer rests on (for metrics and logs).
    public func decide(_ request: AdmissionRequest, state: some AdmissionState) -> Outcome {
        let mode = policy.mode(namespace: request.namespace, labels: state.namespaceLabels(request.namespace))
        func skip(_ why: String, warning: String? = nil) -> Outcome {
            Outcome(skipped: why, mode: mode, findings: [], response: AdmissionResponse(uid: request.uid, allowed: true, warnings: warning.map { [$0] } ?? []))
        }
        guard request.operation == "CREATE" || request.operation == "UPDATE" else { return skip("operation") }
        guard request.subResource.isEmpty else { return skip("subresource") }
        guard !policy.excludeNamespaces.contains(request.namespace) else { return skip("excluded") }
        guard let object = request.object else { return skip("no-object") }
        let findings: [Finding]
        switch (request.group, request.kind) {
        case ("", "Secret"):
            let type = object["type"]?.stringValue ?? ""
            guard type == SecretType.dockerConfigJSON || type == SecretType.dockercfg else { return skip("ignored-kind") }
            var out: [Finding] = []
            _ = validator.checkSecret(Self.typed(object, "v1", "Secret"), namespace: request.namespace, location: Location(fieldPrefix: ""), into: &out)
            findings = out
        case ("", "ServiceAccount"):
            guard state.hasSynced else { return skip("not-synced", warning: Self.notSynced) }
            let sa = (try? ServiceAccount.decode(.object(Self.typed(object, "v1", "ServiceAccount"))).serviceAccount)
            let names = sa?.imagePullSecrets ?? []
            if request.operation == "UPDATE", let old = request.oldObject,
               (try? ServiceAccount.decode(.object(Self.typed(old, "v1", "ServiceAccount"))).serviceAccount.imagePullSecrets) == names {
                return skip("unchanged")
            }
            // An empty list would make coverage read the cached ServiceAccount's own list.
            let spec = PodSpecInfo(field: "", serviceAccountName: request.name, imagePullSecrets: names, images: [])
            findings = names.isEmpty ? [] : coverage([spec], request: request, kind: "ServiceAccount", state: state)
        case let (group, kind) where Self.workloadGroups[kind] == group:
            let specs = PodSpecFinder.podSpecs(in: Self.typed(object, request.version, kind))
            if request.operation == "UPDATE", let old = request.oldObject, PodSpecFinder.podSpecs(in: Self.typed(old, request.version, kind)) == specs {
                return skip("unchanged")
            }
            guard state.hasSynced else { return skip("not-synced", warning: Self.notSynced) }
            findings = coverage(specs, request: request, kind: kind, state: state)
        default:
            return skip("ignored-kind")
        }
        return Outcome(skipped: nil, mode: mode, findings: findings, response: respond(request.uid, findings, mode: mode))
    }

    static let notSynced = "dynsecret: the webhook's caches have not synced yet; image pull secrets were not checked"

    /// `kind`/`apiVersion` as the object's kind expects them (the API server may send objects without them).
    private static func typed(_ o: JSONObject, _ version: String, _ kind: String) -> JSONObject {
        var o = o
        if o["kind"] == nil { o["kind"] = .string(kind) }
        if o["apiVersion"] == nil { o["apiVersion"] = .string(version) }
        return o
    }

    private func coverage(_ specs: [PodSpecInfo], request: AdmissionRequest, kind: String, state: some AdmissionState) -> [Finding] {
        let ref = ObjectRef(kind: kind, namespace: request.namespace, name: request.name.isEmpty ? request.object?["metadata"]?["name"]?.stringValue : request.name)
        var findings: [Finding] = []
        var pulls: [ImagePull] = []
        let lookup = ClusterLookup(state: state)
        for spec in specs {
            let w = ValidationRun.Workload(ref: ref, location: Location(fieldPrefix: ""), namespace: request.namespace, spec: spec)
            validator.checkCoverage(w, lookup: lookup, into: &findings, pulls: &pulls)
        }
        return findings
    }

    private func respond(_ uid: String, _ findings: [Finding], mode: AdmissionMode) -> AdmissionResponse {
        let errors = findings.filter { $0.severity == .error }
        let warnings = findings.filter { $0.severity == .warning }
        func line(_ f: Finding) -> String { "\(f.field.map { $0 + ": " } ?? "")\(f.message) [\(f.rule)]" }
        // Warnings lead with the rule and leave out the field path: kubectl shows 256 characters at most.
        var shown = (mode == .enforce ? warnings : errors + warnings).map { "dynsecret[\($0.rule)]: \($0.message)" }
        if shown.count > AdmissionResponse.maxWarnings {
            let more = shown.count - (AdmissionResponse.maxWarnings - 1)
            shown = Array(shown.prefix(AdmissionResponse.maxWarnings - 1)) + ["dynsecret: \(more) more findings; run dynsecret validate for all of them"]
        }
        let warningTexts = shown.map(AdmissionResponse.warning)
        if mode == .enforce && !errors.isEmpty {
            let message = "dynsecret: " + errors.map(line).joined(separator: "; ")
            return AdmissionResponse(uid: uid, allowed: false, code: 403, message: message, warnings: warningTexts)
        }
        return AdmissionResponse(uid: uid, allowed: true, warnings: warningTexts)
    }
}
