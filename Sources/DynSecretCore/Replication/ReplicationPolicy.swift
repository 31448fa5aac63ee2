internal import Yams

/// A `dynsecret.io/v1alpha1` `ReplicationPolicy`: which Secrets are copied to which namespaces, and how.
public struct ReplicationPolicy: Sendable, Equatable {
    public static let apiVersion = "dynsecret.io/v1alpha1"
    public static let kind = "ReplicationPolicy"
    /// Namespaces never targeted unless the policy sets its own `spec.excludeNamespaces`.
    public static let defaultExcludedNamespaces = ["kube-system", "kube-public", "kube-node-lease"]
    /// Bounds on a policy, so its cost per reconcile is bounded too (the file itself is read up to 1 MiB).
    public static let maxRules = 1_000
    /// Namespace names in one list (`namespaces`, `excludeNamespaces`).
    public static let maxListEntries = 10_000
    /// `namespacePatterns` of one rule; each at most `NamespaceGlob.maxLength` characters.
    public static let maxPatterns = 1_000

    public enum OnClusterRemove: String, Sendable { case retain, delete }

    public var name: String
    /// Policy-wide exclusions (default `defaultExcludedNamespaces`).
    public var excludeNamespaces: [String]
    public var rules: [ReplicationRule]
    /// Member clusters the rules may target besides the hub (`local`).
    public var clusters: [MemberCluster]
    /// What happens to the replicas in a declared cluster that no rule targets any more: kept (default), or pruned
    /// as each rule's `prune` says.
    public var onClusterRemove: OnClusterRemove

    /// Credentials the controller mints (`spec.credentials[]`), which rules name as sources.
    public var credentials: [MintedCredentialSource]

    /// Whether some rule targets a member cluster.
    public var isMultiCluster: Bool { !clusters.isEmpty }

    /// The kinds the rules replicate, in `ReplicatedKind` order.
    public var kinds: [ReplicatedKind] { ReplicatedKind.allCases.filter { k in rules.contains { $0.source.kind == k } } }

    /// The kinds some rule takes requests for (`targets.requested`): their readers must see every object carrying
    /// `dynsecret.io/replicate-from`, not only labelled replicas.
    public var requestedKinds: Set<ReplicatedKind> { Set(rules.filter(\.targets.requested).map(\.source.kind)) }

    /// The ServiceAccount names the rules patch, each once, in rule order.
    public var serviceAccountNames: [String] {
        var names: [String] = []
        for rule in rules { for n in rule.serviceAccounts where !names.contains(n) { names.append(n) } }
        return names
    }

    public init(name: String, excludeNamespaces: [String] = ReplicationPolicy.defaultExcludedNamespaces, rules: [ReplicationRule],
                clusters: [MemberCluster] = [], onClusterRemove: OnClusterRemove = .retain, credentials: [MintedCredentialSource] = []) {
        self.name = name
        self.credentials = credentials
        self.excludeNamespaces = excludeNamespaces
        self.rules = rules
        self.clusters = clusters
        self.onClusterRemove = onClusterRemove
    }
}

/// A member cluster of a policy: a name, and how the hub reaches it.
public struct MemberCluster: Sendable, Equatable {
    public enum Access: Sendable, Equatable {
        /// A kubeconfig held in a Secret of the hub (watched: a rotated credential is used without restart).
        case kubeconfigSecret(namespace: String, name: String, key: String)
        /// A context of the controller's member kubeconfig (`--member-kubeconfig`).
        case context(String)
        /// Every context of the member kubeconfig whose name matches the glob; each is a cluster named after its
        /// context, and rules may target them all by this entry's name.
        case contextPattern(String)
    }

    /// The key read from a kubeconfig Secret when none is given.
    public static let defaultKubeconfigKey = "kubeconfig"

    public var name: String
    public var access: Access
    /// Namespaced mode: the hub may only act in these namespaces of the member (Roles there, no cluster-wide
    /// access), so nothing is read cluster-wide; empty: the whole cluster.
    public var namespaces: [String]

    public init(name: String, access: Access, namespaces: [String] = []) {
        self.name = name
        self.access = access
        self.namespaces = namespaces
    }
}

/// One rule of a policy.
public struct ReplicationRule: Sendable, Equatable {
    public enum Mode: String, Sendable { case sync, createOnly = "create-only" }
    public enum OnConflict: String, Sendable { case skip, adopt, overwrite }
    public enum OnSourceDelete: String, Sendable { case retain, delete }

    /// The source: one object by name, or the objects of a namespace matching a label selector; Secrets unless
    /// `kind` says ConfigMap. Or credentials the controller mints (`credentials`, namespace empty): one
    /// dockerconfigjson holding them all.
    public struct Source: Sendable, Equatable {
        public var kind: ReplicatedKind
        public var namespace: String
        public var name: String?
        public var selector: LabelSelector?
        /// Names from `spec.credentials` (then `namespace` is empty).
        public var credentials: [String]
        public init(kind: ReplicatedKind = .secret, namespace: String, name: String? = nil, selector: LabelSelector? = nil, credentials: [String] = []) {
            self.kind = kind
            self.namespace = namespace
            self.name = name
            self.selector = selector
            self.credentials = credentials
        }

        /// A minted source: the credentials named.
        public static func minted(_ names: [String]) -> Source { Source(namespace: "", credentials: names) }

        /// Whether the source is minted credentials.
        public var isMinted: Bool { !credentials.isEmpty }

        /// The name a minted source's `SourceObject` carries (namespace empty): the credential names in order.
        public static func mintedName(_ names: [String]) -> String { names.joined(separator: ",") }
    }

    /// The target namespaces: the union of the three forms, minus exclusions. With `requested`, the rule writes only
    /// where a namespace owner asks (pull mode): objects of the rule's kind carrying `dynsecret.io/replicate-from`
    /// naming one of its sources, in a namespace the three forms allow.
    public struct Targets: Sendable, Equatable {
        public var namespaces: [String]
        public var namespacePatterns: [String]
        public var namespaceSelector: LabelSelector?
        public var excludeNamespaces: [String]
        public var requested: Bool
        /// The clusters written to: names (`local` is the hub) or globs over them; the namespace forms apply inside
        /// each.
        public var clusters: [String]
        public init(namespaces: [String] = [], namespacePatterns: [String] = [], namespaceSelector: LabelSelector? = nil, excludeNamespaces: [String] = [],
                    requested: Bool = false, clusters: [String] = [ReplicationScope.localCluster]) {
            self.namespaces = namespaces
            self.namespacePatterns = namespacePatterns
            self.namespaceSelector = namespaceSelector
            self.excludeNamespaces = excludeNamespaces
            self.requested = requested
            self.clusters = clusters
        }
    }

    /// Secret types a selector source never picks, whatever the selector says: ServiceAccount tokens and Helm releases.
    public static let neverSelectedTypes: Set<String> = ["kubernetes.io/service-account-token", "helm.sh/release.v1"]

    public var name: String
    public var source: Source
    public var targets: Targets
    public var targetName: String?
    public var mode: Mode
    public var onConflict: OnConflict
    public var prune: Bool
    public var onSourceDelete: OnSourceDelete
    public var serviceAccounts: [String]
    public var copyLabels: [String]
    public var copyAnnotations: [String]

    public init(
        name: String, source: Source, targets: Targets, targetName: String? = nil, mode: Mode = .sync,
        onConflict: OnConflict = .skip, prune: Bool = true, onSourceDelete: OnSourceDelete = .retain,
        serviceAccounts: [String] = [], copyLabels: [String] = [], copyAnnotations: [String] = []
    ) {
        self.name = name
        self.source = source
        self.targets = targets
        self.targetName = targetName
        self.mode = mode
        self.onConflict = onConflict
        self.prune = prune
        self.onSourceDelete = onSourceDelete
        self.serviceAccounts = serviceAccounts
        self.copyLabels = copyLabels
        self.copyAnnotations = copyAnnotations
    }
}

extension ReplicationPolicy {
    /// Reads a policy file (one YAML or JSON document). Every error names the file, the line and the field path.
    public static func load(_ bytes: [UInt8], source: String) throws(ManifestError) -> ReplicationPolicy {
        let docs = try ManifestReader.read(bytes, source: source)
        guard docs.count == 1, let doc = docs.first else {
            throw ManifestError(docs.isEmpty ? "no policy document" : "expected one policy document, found \(docs.count)", source: source)
        }
        do {
            return try decode(doc.value)
        } catch {
            let line = error.field.flatMap { FieldLines.line(of: $0, in: bytes) } ?? doc.line
            throw error.located(source: source, document: nil, line: line)
        }
    }

    /// Decodes and validates a policy object.
    public static func decode(_ value: JSONValue) throws(ManifestError) -> ReplicationPolicy {
        guard case .object(let object) = value else { throw ManifestError("expected a ReplicationPolicy object, got \(value.typeName)") }
        let r = FieldReader(object, path: "")
        try rejectUnknown(r, ["apiVersion", "kind", "metadata", "spec"])
        guard try r.string("apiVersion") == apiVersion else { throw ManifestError("expected \(apiVersion)", field: "apiVersion") }
        guard try r.string("kind") == kind else { throw ManifestError("expected \(kind)", field: "kind") }
        let meta = FieldReader(try r.object("metadata") ?? JSONObject(), path: "metadata")
        try rejectUnknown(meta, ["name", "labels", "annotations"])
        guard let name = try meta.string("name"), !name.isEmpty else { throw ManifestError("required value", field: "metadata.name") }
        if let p = KubeNames.dns1123SubdomainProblems(name).first { throw ManifestError(p, field: "metadata.name") }
        _ = try meta.stringMap("labels")
        _ = try meta.stringMap("annotations")
        guard let specObject = try r.object("spec") else { throw ManifestError("required value", field: "spec") }
        let spec = FieldReader(specObject, path: "spec")
        try rejectUnknown(spec, ["excludeNamespaces", "rules", "clusters", "onClusterRemove", "credentials"])
        let clusters = try MemberCluster.decodeList(spec)
        let credentials = try MintedCredentialSource.decodeList(spec)
        var onClusterRemove = OnClusterRemove.retain
        if let raw = try spec.string("onClusterRemove") {
            guard let v = OnClusterRemove(rawValue: raw) else {
                throw ManifestError("unsupported value \(KubeNames.goQuote(raw)): supported values: \"retain\", \"delete\"", field: spec.child("onClusterRemove"))
            }
            onClusterRemove = v
        }
        let excludes = spec.object["excludeNamespaces"] == nil || spec.object["excludeNamespaces"] == .null ? defaultExcludedNamespaces : try spec.stringArray("excludeNamespaces")
        for (i, ns) in excludes.enumerated() { try checkNamespace(ns, field: spec.child("excludeNamespaces") + "[\(i)]") }
        guard let ruleValues = try spec.array("rules"), !ruleValues.isEmpty else { throw ManifestError("at least one rule is required", field: "spec.rules") }
        if ruleValues.count > maxRules { throw ManifestError("too many rules: \(ruleValues.count), at most \(maxRules)", field: "spec.rules") }
        if excludes.count > maxListEntries {
            throw ManifestError("too many entries: \(excludes.count), at most \(maxListEntries)", field: spec.child("excludeNamespaces"))
        }
        var rules: [ReplicationRule] = []
        var seen: Set<String> = []
        for (i, v) in ruleValues.enumerated() {
            let path = "spec.rules[\(i)]"
            guard case .object(let o) = v else { throw ManifestError("expected object, got \(v.typeName)", field: path) }
            let rule = try ReplicationRule.decode(o, path: path, clusters: clusters, credentials: credentials)
            guard seen.insert(rule.name).inserted else { throw ManifestError("duplicate rule name \(KubeNames.goQuote(rule.name))", field: path + ".name") }
            rules.append(rule)
        }
        return ReplicationPolicy(name: name, excludeNamespaces: excludes, rules: rules, clusters: clusters, onClusterRemove: onClusterRemove,
                                 credentials: credentials)
    }

    static func rejectUnknown(_ r: FieldReader, _ known: Set<String>) throws(ManifestError) {
        if let u = r.unknownFields(known: known).first { throw ManifestError("unknown field", field: u) }
    }

    static func checkNamespace(_ ns: String, field: String) throws(ManifestError) {
        if let p = KubeNames.dns1123LabelProblems(ns).first { throw ManifestError("invalid namespace \(KubeNames.goQuote(ns)): \(p)", field: field) }
    }
}

extension MemberCluster {
    /// Most member clusters a policy declares.
    static let maxClusters = 1_000

    static func decodeList(_ spec: FieldReader) throws(ManifestError) -> [MemberCluster] {
        guard let values = try spec.array("clusters") else { return [] }
        if values.count > maxClusters { throw ManifestError("too many clusters: \(values.count), at most \(maxClusters)", field: spec.child("clusters")) }
        var out: [MemberCluster] = []
        for (i, v) in values.enumerated() {
            let path = spec.child("clusters") + "[\(i)]"
            guard case .object(let o) = v else { throw ManifestError("expected object, got \(v.typeName)", field: path) }
            let r = FieldReader(o, path: path)
            try ReplicationPolicy.rejectUnknown(r, ["name", "kubeconfigSecret", "context", "contextPattern", "namespaces"])
            let namespaces = try r.stringArray("namespaces")
            if namespaces.count > ReplicationPolicy.maxListEntries {
                throw ManifestError("too many entries: \(namespaces.count), at most \(ReplicationPolicy.maxListEntries)", field: r.child("namespaces"))
            }
            for (j, ns) in namespaces.enumerated() { try ReplicationPolicy.checkNamespace(ns, field: r.child("namespaces") + "[\(j)]") }
            guard let name = try r.string("name"), !name.isEmpty else { throw ManifestError("required value", field: r.child("name")) }
            if let p = KubeNames.dns1123LabelProblems(name).first { throw ManifestError(p, field: r.child("name")) }
            if name == ReplicationScope.localCluster {
                throw ManifestError("\"local\" is the hub itself (implicit); name member clusters otherwise", field: r.child("name"))
            }
            if out.contains(where: { $0.name == name }) { throw ManifestError("duplicate cluster name \(KubeNames.goQuote(name))", field: r.child("name")) }
            let given = ["kubeconfigSecret", "context", "contextPattern"].filter { o[$0] != nil && o[$0] != .null }
            guard given.count == 1 else {
                throw ManifestError(given.isEmpty ? "required value: give kubeconfigSecret, context or contextPattern"
                                                  : "\(given.joined(separator: " and ")) are mutually exclusive", field: r.child(given.last ?? "kubeconfigSecret"))
            }
            let access: Access
            if let ks = try r.object("kubeconfigSecret") {
                let k = FieldReader(ks, path: r.child("kubeconfigSecret"))
                try ReplicationPolicy.rejectUnknown(k, ["namespace", "name", "key"])
                guard let ns = try k.string("namespace"), !ns.isEmpty else { throw ManifestError("required value", field: k.child("namespace")) }
                try ReplicationPolicy.checkNamespace(ns, field: k.child("namespace"))
                guard let n = try k.string("name"), !n.isEmpty else { throw ManifestError("required value", field: k.child("name")) }
                if let p = KubeNames.dns1123SubdomainProblems(n).first { throw ManifestError(p, field: k.child("name")) }
                let key = try k.string("key") ?? defaultKubeconfigKey
                if let p = SecretAPIRules.keyProblems(key).first { throw ManifestError(p, field: k.child("key")) }
                access = .kubeconfigSecret(namespace: ns, name: n, key: key)
            } else if let c = try r.string("context") {
                guard !c.isEmpty else { throw ManifestError("required value", field: r.child("context")) }
                access = .context(c)
            } else {
                let p = try r.string("contextPattern") ?? ""
                if p.isEmpty { throw ManifestError("required value", field: r.child("contextPattern")) }
                if let problem = NamespaceGlob.problem(p) { throw ManifestError("invalid glob \(KubeNames.goQuote(p)): \(problem)", field: r.child("contextPattern")) }
                access = .contextPattern(p)
            }
            out.append(MemberCluster(name: name, access: access, namespaces: namespaces))
        }
        return out
    }
}

extension ReplicationRule {
    static func decode(_ object: JSONObject, path: String, clusters: [MemberCluster] = [], credentials: [MintedCredentialSource] = []) throws(ManifestError) -> ReplicationRule {
        let r = FieldReader(object, path: path)
        try ReplicationPolicy.rejectUnknown(r, [
            "name", "source", "targets", "targetName", "mode", "onConflict", "prune", "onSourceDelete",
            "serviceAccounts", "copyLabels", "copyAnnotations",
        ])
        guard let name = try r.string("name"), !name.isEmpty else { throw ManifestError("required value", field: r.child("name")) }
        if let p = KubeNames.dns1123LabelProblems(name).first { throw ManifestError(p, field: r.child("name")) }

        guard let sourceObject = try r.object("source") else { throw ManifestError("required value: a rule needs a source", field: r.child("source")) }
        let s = FieldReader(sourceObject, path: r.child("source"))
        try ReplicationPolicy.rejectUnknown(s, ["kind", "namespace", "name", "selector", "credentials"])
        if s.object["credentials"] != nil && s.object["credentials"] != .null {
            return try decodeMinted(r, s, name: name, path: path, clusters: clusters, credentials: credentials)
        }
        var kind = ReplicatedKind.secret
        if let raw = try s.string("kind") {
            guard let k = ReplicatedKind(rawValue: raw) else {
                throw ManifestError("unsupported value \(KubeNames.goQuote(raw)): supported values: \(ReplicatedKind.allCases.map { KubeNames.goQuote($0.rawValue) }.joined(separator: ", "))", field: s.child("kind"))
            }
            kind = k
        }
        guard let sourceNamespace = try s.string("namespace"), !sourceNamespace.isEmpty else { throw ManifestError("required value", field: s.child("namespace")) }
        try ReplicationPolicy.checkNamespace(sourceNamespace, field: s.child("namespace"))
        let sourceName = try s.string("name")
        let selector = try s.object("selector").map { o throws(ManifestError) in try LabelSelector.decode(o, path: s.child("selector")) }
        switch (sourceName, selector) {
        case (nil, nil): throw ManifestError("required value: give name or selector", field: s.child("name"))
        case (.some, .some): throw ManifestError("name and selector are mutually exclusive", field: s.child("selector"))
        case (let n?, nil): if let p = KubeNames.dns1123SubdomainProblems(n).first { throw ManifestError(p, field: s.child("name")) }
        case (nil, let sel?):
            // An empty selector matches every Secret of the namespace: almost always a mistake.
            if sel.matchLabels.isEmpty && sel.matchExpressions.isEmpty {
                throw ManifestError("an empty selector would copy every \(kind.rawValue) of the namespace; give matchLabels or matchExpressions", field: s.child("selector"))
            }
        }

        let targetName = try r.string("targetName")
        return try finish(r, name: name, source: .init(kind: kind, namespace: sourceNamespace, name: sourceName, selector: selector), targetName: targetName,
                          clusters: clusters)
    }

    /// A rule's `targets`.
    static func decodeTargets(_ t: FieldReader, clusters: [MemberCluster]) throws(ManifestError) -> Targets {
        try ReplicationPolicy.rejectUnknown(t, ["namespaces", "namespacePatterns", "namespaceSelector", "excludeNamespaces", "requested", "clusters"])
        var targetClusters = [ReplicationScope.localCluster]
        if t.object["clusters"] != nil && t.object["clusters"] != .null {
            targetClusters = try t.stringArray("clusters")
            if targetClusters.isEmpty { throw ManifestError("at least one cluster (\"local\" is the hub)", field: t.child("clusters")) }
            if targetClusters.count > MemberCluster.maxClusters + 1 {
                throw ManifestError("too many entries: \(targetClusters.count), at most \(MemberCluster.maxClusters + 1)", field: t.child("clusters"))
            }
            for (i, c) in targetClusters.enumerated() {
                let field = t.child("clusters") + "[\(i)]"
                if c.contains(where: { "*?[\\".contains($0) }) {
                    if let problem = NamespaceGlob.problem(c) { throw ManifestError("invalid glob \(KubeNames.goQuote(c)): \(problem)", field: field) }
                } else if c != ReplicationScope.localCluster && !clusters.contains(where: { $0.name == c }) {
                    throw ManifestError("unknown cluster \(KubeNames.goQuote(c)): declare it in spec.clusters (\"local\" is the hub)", field: field)
                }
            }
        }
        let namespaces = try t.stringArray("namespaces")
        for (i, ns) in namespaces.enumerated() { try ReplicationPolicy.checkNamespace(ns, field: t.child("namespaces") + "[\(i)]") }
        if namespaces.count > ReplicationPolicy.maxListEntries {
            throw ManifestError("too many entries: \(namespaces.count), at most \(ReplicationPolicy.maxListEntries)", field: t.child("namespaces"))
        }
        let patterns = try t.stringArray("namespacePatterns")
        if patterns.count > ReplicationPolicy.maxPatterns {
            throw ManifestError("too many patterns: \(patterns.count), at most \(ReplicationPolicy.maxPatterns)", field: t.child("namespacePatterns"))
        }
        for (i, p) in patterns.enumerated() {
            let field = t.child("namespacePatterns") + "[\(i)]"
            // Bounded before it is parsed: every namespace of every reconcile is matched against it.
            if p.unicodeScalars.count > NamespaceGlob.maxLength {
                throw ManifestError("glob of \(p.unicodeScalars.count) characters; at most \(NamespaceGlob.maxLength)", field: field)
            }
            if let problem = NamespaceGlob.problem(p) { throw ManifestError("invalid glob \(KubeNames.goQuote(p)): \(problem)", field: field) }
            let shortest = NamespaceGlob.shortestMatch(p)
            if shortest > KubeNames.maxLabelLength {
                throw ManifestError("glob \(KubeNames.goQuote(p)) matches only names of \(shortest) or more characters; a namespace name has at most \(KubeNames.maxLabelLength)", field: field)
            }
        }
        let nsSelector = try t.object("namespaceSelector").map { o throws(ManifestError) in try LabelSelector.decode(o, path: t.child("namespaceSelector")) }
        let excludes = try t.stringArray("excludeNamespaces")
        if excludes.count > ReplicationPolicy.maxListEntries {
            throw ManifestError("too many entries: \(excludes.count), at most \(ReplicationPolicy.maxListEntries)", field: t.child("excludeNamespaces"))
        }
        for (i, ns) in excludes.enumerated() { try ReplicationPolicy.checkNamespace(ns, field: t.child("excludeNamespaces") + "[\(i)]") }
        let requested = try t.bool("requested") ?? false
        if namespaces.isEmpty && patterns.isEmpty && nsSelector == nil {
            if requested {
                throw ManifestError("required value: targets.requested takes requests only from the namespaces the rule allows; give namespaces, namespacePatterns (\"*\" for every namespace) or namespaceSelector", field: t.child("namespaces"))
            }
            throw ManifestError("required value: give namespaces, namespacePatterns or namespaceSelector", field: t.child("namespaces"))
        }
        return Targets(namespaces: namespaces, namespacePatterns: patterns, namespaceSelector: nsSelector, excludeNamespaces: excludes, requested: requested,
                       clusters: targetClusters)
    }

    /// A rule whose source is minted credentials: `credentials` names entries of `spec.credentials`; the copy is
    /// a Secret named by `targetName` (required).
    static func decodeMinted(_ r: FieldReader, _ s: FieldReader, name: String, path: String, clusters: [MemberCluster],
                             credentials: [MintedCredentialSource]) throws(ManifestError) -> ReplicationRule {
        for k in ["namespace", "name", "selector"] where s.object[k] != nil {
            throw ManifestError("credentials and \(k) are mutually exclusive", field: s.child(k))
        }
        if let k = try s.string("kind"), k != ReplicatedKind.secret.rawValue {
            throw ManifestError("minted credentials are a Secret (kubernetes.io/dockerconfigjson); kind cannot be \(KubeNames.goQuote(k))", field: s.child("kind"))
        }
        let names = try s.stringArray("credentials")
        guard !names.isEmpty else { throw ManifestError("required value: name at least one of spec.credentials", field: s.child("credentials")) }
        var seen: Set<String> = []
        for (i, n) in names.enumerated() {
            guard credentials.contains(where: { $0.name == n }) else {
                throw ManifestError("unknown credential \(KubeNames.goQuote(n)): declare it in spec.credentials", field: s.child("credentials") + "[\(i)]")
            }
            guard seen.insert(n).inserted else { throw ManifestError("duplicate credential \(KubeNames.goQuote(n))", field: s.child("credentials") + "[\(i)]") }
        }
        guard let targetName = try r.string("targetName") else {
            throw ManifestError("required value: a rule with minted credentials names its copies (targetName)", field: r.child("targetName"))
        }
        return try finish(r, name: name, source: .minted(names), targetName: targetName, clusters: clusters)
    }

    /// The targets and the rest of a rule, after its source.
    private static func finish(_ r: FieldReader, name: String, source: Source, targetName: String?, clusters: [MemberCluster]) throws(ManifestError) -> ReplicationRule {
        let kind = source.kind, selector = source.selector
        guard let targetsObject = try r.object("targets") else { throw ManifestError("required value", field: r.child("targets")) }
        let t = FieldReader(targetsObject, path: r.child("targets"))
        let parsedTargets = try decodeTargets(t, clusters: clusters)
        let requested = parsedTargets.requested
        if source.isMinted && requested {
            throw ManifestError("minted credentials are pushed to their targets; targets.requested is not for them", field: r.child("targets") + ".requested")
        }
        if let targetName {
            if requested { throw ManifestError("a requested copy takes the name of the object that requests it; targetName cannot be set with targets.requested", field: r.child("targetName")) }
            if selector != nil { throw ManifestError("targetName needs a single-source rule (source.name), not a selector", field: r.child("targetName")) }
            if let p = KubeNames.dns1123SubdomainProblems(targetName).first { throw ManifestError(p, field: r.child("targetName")) }
        }
        func choice<T: RawRepresentable<String>>(_ key: String, _ all: [T], _ fallback: T) throws(ManifestError) -> T {
            guard let raw = try r.string(key) else { return fallback }
            guard let v = T(rawValue: raw) else {
                throw ManifestError("unsupported value \(KubeNames.goQuote(raw)): supported values: \(all.map { KubeNames.goQuote($0.rawValue) }.joined(separator: ", "))", field: r.child(key))
            }
            return v
        }
        let mode: Mode = try choice("mode", [Mode.sync, .createOnly], .sync)
        let onConflict: OnConflict = try choice("onConflict", [OnConflict.skip, .adopt, .overwrite], .skip)
        let onSourceDelete: OnSourceDelete = try choice("onSourceDelete", [OnSourceDelete.retain, .delete], .retain)
        let serviceAccounts = try r.stringArray("serviceAccounts")
        if kind == .configMap && !serviceAccounts.isEmpty {
            throw ManifestError("serviceAccounts lists pull secrets; a ConfigMap rule cannot set it", field: r.child("serviceAccounts"))
        }
        for (i, sa) in serviceAccounts.enumerated() {
            if let p = KubeNames.dns1123SubdomainProblems(sa).first { throw ManifestError(p, field: r.child("serviceAccounts") + "[\(i)]") }
        }
        let copyLabels = try r.stringArray("copyLabels")
        let copyAnnotations = try r.stringArray("copyAnnotations")
        for (key, list) in [("copyLabels", copyLabels), ("copyAnnotations", copyAnnotations)] {
            for (i, k) in list.enumerated() {
                let field = r.child(key) + "[\(i)]"
                if let p = LabelSelector.labelKeyProblem(k) { throw ManifestError("invalid key \(KubeNames.goQuote(k)): \(p)", field: field) }
                if ReplicaMarkers.reservedKeys.contains(k) || k == ReplicaMarkers.lastApplied || k == ReplicaMarkers.requestAnnotation {
                    throw ManifestError("\(KubeNames.goQuote(k)) is never copied", field: field)
                }
            }
        }
        return ReplicationRule(
            name: name, source: source, targets: parsedTargets,
            targetName: targetName, mode: mode, onConflict: onConflict, prune: try r.bool("prune") ?? true,
            onSourceDelete: onSourceDelete, serviceAccounts: serviceAccounts, copyLabels: copyLabels, copyAnnotations: copyAnnotations
        )
    }
}

/// Maps a field path (`spec.rules[0].targets.namespaces[1]`) to its line in a YAML or JSON document.
enum FieldLines {
    static func line(of path: String, in bytes: [UInt8]) -> Int? {
        guard let text = String(validating: bytes, as: UTF8.self), let root = try? Yams.compose(yaml: text) else { return nil }
        var node = root
        var best = root.mark?.line
        for step in steps(path) {
            switch (step, node) {
            case (.key(let k), .mapping(let m)):
                guard let pair = m.first(where: { $0.key.string == k }) else { return best }
                node = pair.value
                best = pair.key.mark?.line ?? best
            case (.index(let i), .sequence(let s)):
                guard i < s.count else { return best }
                node = s[i]
                best = node.mark?.line ?? best
            default:
                return best
            }
        }
        return best
    }

    private enum Step { case key(String), index(Int) }

    private static func steps(_ path: String) -> [Step] {
        var out: [Step] = []
        var current = ""
        var chars = path[...]
        while let c = chars.first {
            chars = chars.dropFirst()
            switch c {
            case ".":
                if !current.isEmpty { out.append(.key(current)) }
                current = ""
            case "[":
                if !current.isEmpty { out.append(.key(current)) }
                current = ""
                let inner = chars.prefix { $0 != "]" }
                chars = chars.dropFirst(inner.count + 1)
                out.append(Int(inner).map(Step.index) ?? .key(String(inner)))
            default:
                current.append(c)
            }
        }
        if !current.isEmpty { out.append(.key(current)) }
        return out
    }
}
