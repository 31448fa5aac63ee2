/// Options for `Validator`.
public struct ValidationOptions: Sendable {
    /// Namespace of objects that name none (kubectl's `-n`).
    public var defaultNamespace = "default"
    /// Registry globs (kubelet key syntax: `nvcr.io`, `*.example.com`, `registry.example.com:5000/team`) whose
    /// uncovered images are errors rather than notes.
    public var privateRegistries: [String] = []
    /// Certificates expiring within this many days are warnings.
    public var expiryWarningDays = 30
    /// The current time, seconds since the epoch (injected so that results are reproducible).
    public var now: Int64

    public init(now: Int64) { self.now = now }
}

/// The outcome of a validation run.
public struct ValidationReport: Sendable {
    public var findings: [Finding] = []
    public var objects = 0
    public var secrets = 0
    public var podSpecs = 0
    public var images = 0
    /// Every image covered by a pull secret, with the credentials the kubelet would try (for pull verification).
    public var imagePulls: [ImagePull] = []
}

/// A workload image and the credentials the kubelet would try for it, in order.
public struct ImagePull: Sendable {
    /// The image as written in the pod.
    public var image: String
    public var reference: ImageReference
    public var credentials: [CredentialKeyring.Match]
    /// The workload and the image's field.
    public var object: ObjectRef
    public var field: String
    let location: Location

    /// A finding about this image, located at its field.
    public func finding(_ rule: ValidationRule, _ message: String) -> Finding {
        location.finding(rule, message, object: object, field: field)
    }
}

/// Validates Secrets and workload image coverage over a set of manifest documents.
///
/// Pure: key material is parsed through the injected `KeyMaterialInspector`; time comes from the options.
public struct Validator: Sendable {
    public var options: ValidationOptions
    public var inspector: (any KeyMaterialInspector)?

    public init(options: ValidationOptions, inspector: (any KeyMaterialInspector)?) {
        self.options = options
        self.inspector = inspector
    }

    /// Validates a complete set of documents.
    public func validate(_ documents: [ManifestDocument]) -> ValidationReport {
        var run = ValidationRun(self)
        for doc in documents { run.add(doc) }
        return run.finish()
    }
    /// Decides image coverage for one pod spec as the kubelet would, reading pull secrets and ServiceAccounts from
    /// `lookup` (the input for `validate`, the informer caches for admission).
    func checkCoverage(_ w: ValidationRun.Workload, lookup: some CoverageLookup, into findings: inout [Finding], pulls: inout [ImagePull]) {
        func add(_ rule: ValidationRule, _ message: String, field: String?, severity: Severity? = nil) {
            findings.append(w.location.finding(rule, message, object: w.ref, field: field, severity: severity))
        }
        // The ServiceAccount admission plugin copies the ServiceAccount's imagePullSecrets only into pods that name none.
        var refs: [(name: String, field: String)] = w.spec.imagePullSecrets.enumerated().map {
            ($0.element, (w.spec.field.isEmpty ? "" : w.spec.field + ".") + "imagePullSecrets[\($0.offset)].name")
        }
        if refs.isEmpty {
            if let sa = lookup.serviceAccount(w.namespace, w.spec.serviceAccountName) {
                refs = sa.imagePullSecrets.map { ($0, "ServiceAccount \(w.namespace)/\(w.spec.serviceAccountName) imagePullSecrets") }
            } else if w.spec.serviceAccountName != "default" {
                add(.serviceAccountUnknown, "ServiceAccount \(KubeNames.goQuote(w.spec.serviceAccountName)) is not in \(lookup.scope); its imagePullSecrets are not known",
                    field: "\(w.spec.field).serviceAccountName")
            }
        }
        var keyring = CredentialKeyring()
        var broken = false
        // Why each named pull secret did not help, for the message of an uncovered image.
        var reasons: [String: String] = [:]
        for (name, field) in refs {
            guard !name.isEmpty else {
                add(.pullSecretEmptyRef, "an imagePullSecrets entry has no name", field: field)
                continue
            }
            guard let check = lookup.pullSecret(w.namespace, name) else {
                reasons[name] = lookup.notFound
                add(.pullSecretMissing, "pull secret \(KubeNames.goQuote(name)) is not in \(lookup.scope) (namespace \(w.namespace))", field: field)
                continue
            }
            if let error = check.pullError {
                broken = true
                add(.pullSecretBrokenRef, "pull secret \(KubeNames.goQuote(name)) is malformed (\(error)); the kubelet fails every image pull of this pod", field: field)
                continue
            }
            guard let entries = check.pullEntries else {
                let type = check.secret?.effectiveType ?? "unknown"
                reasons[name] = "wrong type \(type)"
                add(.pullSecretWrongType, "pull secret \(KubeNames.goQuote(name)) has type \(KubeNames.goQuote(type)); the kubelet uses only kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg", field: field)
                continue
            }
            for (key, credential) in entries.sorted(by: { utf8Less($0.key, $1.key) }) {
                keyring.add(configKey: key, credential: credential, source: CredentialSource(namespace: w.namespace, secretName: name, registryKey: key))
            }
        }
        if broken { return }
        for image in w.spec.images {
            guard let text = image.image, !text.isEmpty else {
                add(.imageMissing, "container \(KubeNames.goQuote(image.container)) has no image", field: image.field)
                continue
            }
            let ref: ImageReference
            do {
                ref = try ImageReference.parse(text)
            } catch {
                add(.imageInvalid, "couldn't parse image name \(KubeNames.goQuote(text)): \(error.message)", field: image.field)
                continue
            }
            let matches = keyring.lookup(ref.name)
            if !matches.isEmpty {
                pulls.append(ImagePull(image: text, reference: ref, credentials: matches, object: w.ref, field: image.field, location: w.location))
            }
            if matches.isEmpty {
                let isPrivate = options.privateRegistries.contains { glob in
                    CredentialKeyring.normalize(glob).map { CredentialKeyring.urlsMatch($0, ref.name) } ?? false
                }
                let names = refs.map(\.name).filter { !$0.isEmpty }
                let why = names.map { "\($0): \(reasons[$0] ?? "no key matches")" }.joined(separator: "; ")
                let tried = names.isEmpty ? "the pod has no pull secrets" : "none of \(names.joined(separator: ", ")) has credentials for it (\(why))"
                let candidates = lookup.candidates(ref, w.namespace).filter { !names.contains($0.secret) }
                let hint = candidates.isEmpty ? "" : "; " + candidates.map {
                    "pull secret \($0.secret) (key \($0.configKey)) would cover it: add imagePullSecrets: [\($0.imagePullSecretsEntry)] to the pod or its ServiceAccount"
                }.joined(separator: "; ")
                let container = image.container.isEmpty ? "" : "container \(KubeNames.goQuote(image.container)): "
                add(.imageUncovered, container + "image \(text) (registry \(ref.domain)): \(tried)" + (isPrivate ? "; the registry is private" : "; the pull is anonymous") + hint,
                    field: image.field, severity: isPrivate ? .error : .note)
            }
        }
    }
}

/// An incremental validation: documents are added one at a time (so a large input is never held whole),
/// Secrets and workloads are checked as they come, and image coverage is decided in `finish()`.
public struct ValidationRun: Sendable {
    struct Workload: Sendable {
        var ref: ObjectRef
        var location: Location
        var namespace: String
        var spec: PodSpecInfo
    }

    private let validator: Validator
    private var report = ValidationReport()
    private var secrets: [String: SecretCheck] = [:]  // "ns/name"
    private var serviceAccounts: [String: ServiceAccount] = [:]
    private var workloads: [Workload] = []
    private var seen = Set<String>()

    public init(_ validator: Validator) { self.validator = validator }

    public mutating func add(_ doc: ManifestDocument) { add(doc, fromCluster: false) }

    /// Adds a document; with `fromCluster`, an object already given in the manifests is skipped silently
    /// (the manifest is what will be applied), and live objects fill in what the manifests do not hold.
    public mutating func add(_ doc: ManifestDocument, fromCluster: Bool) {
        let options = validator.options
        for (object, prefix) in doc.objects {
            let location = Location(source: doc.source, document: doc.index, line: doc.line, fieldPrefix: prefix)
            guard case .object(let o) = object else {
                report.findings.append(location.finding(.manifestNotObject, "expected an object, got \(object.typeName)", object: nil, field: nil))
                continue
            }
            report.objects += 1
            let kind = o["kind"]?.stringValue ?? ""
            let apiVersion = o["apiVersion"]?.stringValue ?? ""
            let namespace = o["metadata"]?["namespace"]?.stringValue ?? options.defaultNamespace
            let name = o["metadata"]?["name"]?.stringValue
            let ref = ObjectRef(kind: kind.isEmpty ? "<no kind>" : kind, namespace: namespace, name: name)
            if kind.isEmpty || apiVersion.isEmpty {
                report.findings.append(location.finding(.manifestNoKind, kind.isEmpty ? "Object 'Kind' is missing" : "Object 'apiVersion' is missing", object: ref, field: nil))
                continue
            }
            let identity = "\(apiVersion)/\(kind)/\(namespace)/\(name ?? "")"
            if fromCluster && seen.contains(identity) { continue }
            if name != nil, !seen.insert(identity).inserted {
                report.findings.append(location.finding(.duplicateObject, "appears more than once in the input; the later one wins when applied", object: ref, field: nil))
            }
            switch (apiVersion, kind) {
            case ("v1", "Secret"):
                report.secrets += 1
                let check = validator.checkSecret(o, namespace: namespace, location: location, into: &report.findings)
                secrets["\(check.ref.namespace ?? namespace)/\(name ?? "")"] = check
            case ("v1", "ConfigMap"):
                validator.checkConfigMap(o, namespace: namespace, location: location, into: &report.findings)
            case ("v1", "ServiceAccount"):
                if let sa = try? ServiceAccount.decode(.object(o)).serviceAccount {
                    serviceAccounts["\(namespace)/\(name ?? "")"] = sa
                }
            default:
                for spec in PodSpecFinder.podSpecs(in: o) {
                    workloads.append(Workload(ref: ref, location: location, namespace: namespace, spec: spec))
                }
            }
        }
    }

    /// Records an input error (a document that could not be read) as an error finding.
    public mutating func addInputError(_ error: ManifestError) {
        report.findings.append(Finding(rule: .manifestSyntax, message: error.message, source: error.source, document: error.document,
                                       line: error.line, field: error.field))
    }

    /// Checks image coverage across everything added and returns the report.
    public func finish() -> ValidationReport {
        var report = report
        let lookup = InputLookup(secrets: secrets, serviceAccounts: serviceAccounts, hints: CoverageHints(secrets))
        for w in workloads {
            report.podSpecs += 1
            report.images += w.spec.images.count
            validator.checkCoverage(w, lookup: lookup, into: &report.findings, pulls: &report.imagePulls)
        }
        return report
    }
}

/// Where image coverage reads the pod's pull secrets and ServiceAccount.
protocol CoverageLookup {
    /// Where objects come from, for messages: "the input", "the cluster".
    var scope: String { get }
    /// Why a named pull secret is not found, in an uncovered image's message.
    var notFound: String { get }
    func pullSecret(_ namespace: String, _ name: String) -> SecretCheck?
    func serviceAccount(_ namespace: String, _ name: String) -> ServiceAccount?
    /// The namespace's pull secrets (other than the pod's) with a key matching `image`, for the message's hint.
    func candidates(_ image: ImageReference, _ namespace: String) -> [PullSecretCandidate]
}

/// Coverage over the documents of a validation run.
struct InputLookup: CoverageLookup {
    var secrets: [String: SecretCheck]
    var serviceAccounts: [String: ServiceAccount]
    var hints: CoverageHints
    var scope: String { "the input" }
    var notFound: String { "not found" }
    func pullSecret(_ namespace: String, _ name: String) -> SecretCheck? { secrets[namespace + "/" + name] }
    func serviceAccount(_ namespace: String, _ name: String) -> ServiceAccount? { serviceAccounts[namespace + "/" + name] }
    func candidates(_ image: ImageReference, _ namespace: String) -> [PullSecretCandidate] { hints.candidates(image, namespace) }
}

/// The pull secrets of each namespace that would cover an image the pod does not cover, found once per
/// (namespace, repository): most uncovered images are public ones, repeated across many pods.
final class CoverageHints {
    private var byNamespace: [String: [String: [(key: String, credential: RegistryCredential)]]] = [:]
    private var cache: [String: [PullSecretCandidate]] = [:]

    init(_ secrets: [String: SecretCheck]) {
        for (k, check) in secrets {
            guard let slash = k.firstIndex(of: "/"), let entries = check.pullEntries, check.pullError == nil else { continue }
            byNamespace[String(k[..<slash]), default: [:]][String(k[k.index(after: slash)...])] = entries
        }
    }

    func candidates(_ image: ImageReference, _ namespace: String) -> [PullSecretCandidate] {
        guard let secrets = byNamespace[namespace] else { return [] }
        let key = namespace + "\u{0}" + image.name
        if let hit = cache[key] { return hit }
        let found = PullSecretCandidate.find(image: image, among: secrets, namespace: namespace)
        cache[key] = found
        return found
    }
}
