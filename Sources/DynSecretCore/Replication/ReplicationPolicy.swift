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

    public var name: String
    /// Policy-wide exclusions (default `defaultExcludedNamespaces`).
    public var excludeNamespaces: [String]
    public var rules: [ReplicationRule]

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

    public init(name: String, excludeNamespaces: [String] = ReplicationPolicy.defaultExcludedNamespaces, rules: [ReplicationRule]) {
        self.name = name
        self.excludeNamespaces = excludeNamespaces
        self.rules = rules
    }
}

/// One rule of a policy.
public struct ReplicationRule: Sendable, Equatable {
    public enum Mode: String, Sendable { case sync, createOnly = "create-only" }
    public enum OnConflict: String, Sendable { case skip, adopt, overwrite }
    public enum OnSourceDelete: String, Sendable { case retain, delete }

    /// The source: one object by name, or the objects of a namespace matching a label selector; Secrets unless
    /// `kind` says ConfigMap.
    public struct Source: Sendable, Equatable {
        public var kind: ReplicatedKind
        public var namespace: String
        public var name: String?
        public var selector: LabelSelector?
        public init(kind: ReplicatedKind = .secret, namespace: String, name: String? = nil, selector: LabelSelector? = nil) {
            self.kind = kind
            self.namespace = namespace
            self.name = name
            self.selector = selector
        }
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
        public init(namespaces: [String] = [], namespacePatterns: [String] = [], namespaceSelector: LabelSelector? = nil, excludeNamespaces: [String] = [],
                    requested: Bool = false) {
            self.namespaces = namespaces
            self.namespacePatterns = namespacePatterns
            self.namespaceSelector = namespaceSelector
            self.excludeNamespaces = excludeNamespaces
            self.requested = requested
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
        try rejectUnknown(spec, ["excludeNamespaces", "rules"])
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
            let rule = try ReplicationRule.decode(o, path: path)
            guard seen.insert(rule.name).inserted else { throw ManifestError("duplicate rule name \(KubeNames.goQuote(rule.name))", field: path + ".name") }
            rules.append(rule)
        }
        return ReplicationPolicy(name: name, excludeNamespaces: excludes, rules: rules)
    }

    static func rejectUnknown(_ r: FieldReader, _ known: Set<String>) throws(ManifestError) {
        if let u = r.unknownFields(known: known).first { throw ManifestError("unknown field", field: u) }
    }

    static func checkNamespace(_ ns: String, field: String) throws(ManifestError) {
        if let p = KubeNames.dns1123LabelProblems(ns).first { throw ManifestError("invalid namespace \(KubeNames.goQuote(ns)): \(p)", field: field) }
    }
}

extension ReplicationRule {
    static func decode(_ object: JSONObject, path: String) throws(ManifestError) -> ReplicationRule {
        let r = FieldReader(object, path: path)
        try ReplicationPolicy.rejectUnknown(r, [
            "name", "source", "targets", "targetName", "mode", "onConflict", "prune", "onSourceDelete",
            "serviceAccounts", "copyLabels", "copyAnnotations",
        ])
        guard let name = try r.string("name"), !name.isEmpty else { throw ManifestError("required value", field: r.child("name")) }
        if let p = KubeNames.dns1123LabelProblems(name).first { throw ManifestError(p, field: r.child("name")) }

        guard let sourceObject = try r.object("source") else { throw ManifestError("required value: a rule needs a source", field: r.child("source")) }
        let s = FieldReader(sourceObject, path: r.child("source"))
        try ReplicationPolicy.rejectUnknown(s, ["kind", "namespace", "name", "selector"])
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

        guard let targetsObject = try r.object("targets") else { throw ManifestError("required value", field: r.child("targets")) }
        let t = FieldReader(targetsObject, path: r.child("targets"))
        try ReplicationPolicy.rejectUnknown(t, ["namespaces", "namespacePatterns", "namespaceSelector", "excludeNamespaces", "requested"])
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

        let targetName = try r.string("targetName")
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
            name: name,
            source: .init(kind: kind, namespace: sourceNamespace, name: sourceName, selector: selector),
            targets: .init(namespaces: namespaces, namespacePatterns: patterns, namespaceSelector: nsSelector, excludeNamespaces: excludes, requested: requested),
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
