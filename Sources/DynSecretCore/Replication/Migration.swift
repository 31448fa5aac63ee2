/// The replicators a cluster may use today, whose configuration `dynsecret migrate` translates into a
/// `ReplicationPolicy`, and whose copies it adopts in place.
public enum MigrationTool: String, Sendable, CaseIterable {
    case reflector, replicator, kubed, kyverno

    /// The annotation (and label) prefixes the tool owns. An adopted copy loses its keys, so the old tool no longer
    /// sees it as its own: it neither updates nor deletes it once dynsecret manages it.
    var bookkeepingPrefixes: [String] {
        switch self {
        case .reflector: ["reflector.v1.k8s.emberstack.com/"]
        case .replicator: ["replicator.v1.mittwald.de/"]
        case .kubed: ["kubed.appscode.com/"]
        case .kyverno: ["generate.kyverno.io/", "kyverno.io/"]
        }
    }
}

/// What `dynsecret migrate` reads: namespaces, Secrets and ConfigMaps (sources with the tool's annotations, and its
/// copies), and for Kyverno its `ClusterPolicy`/`Policy` objects.
public struct MigrationInput: Sendable {
    public var namespaces: [ReplicationNamespace]
    public var objects: [ReplicaObject]
    /// Kyverno policies, each with where it was read (for messages).
    public var kyvernoPolicies: [(object: JSONValue, origin: String)]

    public init(namespaces: [ReplicationNamespace], objects: [ReplicaObject], kyvernoPolicies: [(object: JSONValue, origin: String)] = []) {
        self.namespaces = namespaces
        self.objects = objects
        self.kyvernoPolicies = kyvernoPolicies
    }

    /// The planner's view of the same objects.
    public var state: ReplicationState {
        ReplicationState(namespaces: namespaces, secrets: objects.compactMap(\.secret), configMaps: objects.compactMap(\.configMap))
    }
}

/// The outcome of translating one tool's configuration.
public struct Migration: Sendable {
    public var tool: MigrationTool
    /// The policy reproducing what the tool does today (nil when there was nothing to translate or errors).
    public var policy: ReplicationPolicy?
    /// Comment lines for the policy file (regex lists expanded, fields not carried over).
    public var comments: [String] = []
    /// Problems that stop the migration (nothing is written): each names the object and the annotation or field.
    public var errors: [String] = []
    /// The tool's copies, as found: adopted in place by the plan.
    public var copies: Set<ReplicaRef> = []
    /// Copies the tool made on request (replicator's pull stubs), by the source key requested: adopted as
    /// dynsecret requests (`dynsecret.io/replicate-from` added) for the policy's `targets.requested` rules.
    public var requests: [ReplicaRef: String] = [:]

    /// Translates `tool`'s annotations (or Kyverno policies) in `input` into a policy named `policyName`.
    public static func translate(_ tool: MigrationTool, _ input: MigrationInput, policyName: String) -> Migration {
        var t = Translator(tool: tool, input: input)
        t.run()
        var m = Migration(tool: tool)
        m.errors = t.errors
        m.comments = t.comments
        m.copies = t.copies
        m.requests = t.requests
        if t.errors.isEmpty && !t.rules.isEmpty {
            // Namespaces excluded by default where the tool keeps copies today stay targets.
            let kept = Set(t.rules.flatMap(\.targets.namespaces))
            let excludes = ReplicationPolicy.defaultExcludedNamespaces.filter { !kept.contains($0) }
            if excludes.count < ReplicationPolicy.defaultExcludedNamespaces.count {
                m.comments.append("excludeNamespaces: the defaults without \(ReplicationPolicy.defaultExcludedNamespaces.filter { kept.contains($0) }.joined(separator: ", ")), where copies exist today")
            }
            m.policy = ReplicationPolicy(name: policyName, excludeNamespaces: excludes, rules: t.rules)
        }
        return m
    }

    /// The adoption plan: the policy's plan in which every existing copy of the tool is adopted in place (one update
    /// that adds dynsecret's markers, removes the tool's bookkeeping keys and leaves the data as the source has it,
    /// guarded by its uid and resourceVersion), missing copies are created, and nothing is deleted or replaced. An
    /// object at a target name that is not the tool's copy is reported and left alone.
    public func adoptionPlan(_ state: ReplicationState) -> ReplicationPlan? {
        guard var adopting = policy else { return nil }
        for i in adopting.rules.indices { adopting.rules[i].onConflict = .adopt }
        // The tool's pull stubs are planned as the requests they become; each update is then a patch from the
        // object as stored (so it adds the request annotation).
        var planned = state
        var stored: [ReplicaRef: TargetObject] = [:]
        func request(_ m: inout ObjectMeta, _ kind: ReplicatedKind) {
            guard let key = requests[ReplicaRef(kind, m.namespace ?? "default", m.name ?? "")] else { return }
            m.annotations[ReplicaMarkers.requestAnnotation] = key
        }
        for i in planned.secrets.indices where requests[ReplicaRef(.secret, planned.secrets[i].metadata.namespace ?? "default", planned.secrets[i].metadata.name ?? "")] != nil {
            stored[ReplicaRef(.secret, planned.secrets[i].metadata.namespace ?? "default", planned.secrets[i].metadata.name ?? "")] = TargetObject(planned.secrets[i])
            request(&planned.secrets[i].metadata, .secret)
        }
        for i in planned.configMaps.indices where requests[ReplicaRef(.configMap, planned.configMaps[i].metadata.namespace ?? "default", planned.configMaps[i].metadata.name ?? "")] != nil {
            stored[ReplicaRef(.configMap, planned.configMaps[i].metadata.namespace ?? "default", planned.configMaps[i].metadata.name ?? "")] = TargetObject(planned.configMaps[i])
            request(&planned.configMaps[i].metadata, .configMap)
        }
        let plan = ReplicationPlanner.plan(adopting, planned)
        var actions: [ReplicationAction] = []
        var blocked: Set<ReplicaRef> = []
        for a in plan.actions where a.kind == .delete && a.reason.hasPrefix("adopt") { blocked.insert(a.ref) }
        for var a in plan.actions {
            if let original = stored[a.ref], a.previous != nil { a.previous = original }
            switch a.kind {
            case .update where a.reason.hasPrefix("adopt"):
                guard copies.contains(a.ref), var object = a.object else {
                    actions.append(.init(.report, a.objectKind, namespace: a.namespace, name: a.name, rules: a.rules,
                                         reason: "conflict: \(a.objectKind.rawValue) \(a.ref.key) exists and is not a copy made by \(tool.rawValue); left alone"))
                    continue
                }
                var meta = object.metadata
                let strip = { (k: String) in tool.bookkeepingPrefixes.contains { k.hasPrefix($0) } }
                for k in meta.labels.keys where strip(k) { meta.labels[k] = nil }
                for k in meta.annotations.keys where strip(k) { meta.annotations[k] = nil }
                object.metadata = meta
                a.object = object
                a.reason = "adopt the \(tool.rawValue) copy in place" + (a.reason.contains("content differs") ? " (its content differs from the source: updated to it)" : "")
                actions.append(a)
            case .create where blocked.contains(a.ref):
                continue
            case .delete where blocked.contains(a.ref):
                actions.append(.init(.report, a.objectKind, namespace: a.namespace, name: a.name, rules: a.rules,
                                     reason: "cannot adopt in place (\(a.reason.drop { $0 != ":" }.dropFirst(2).prefix { $0 != ";" })); left alone, never deleted"))
            case .delete:
                actions.append(.init(.report, a.objectKind, namespace: a.namespace, name: a.name, rules: a.rules, reason: "migration never deletes: \(a.reason)"))
            default:
                actions.append(a)
            }
        }
        return ReplicationPlan(policy: plan.policy, actions: actions, replicas: plan.replicas, serviceAccounts: plan.serviceAccounts)
    }
}

/// The annotation keys of each tool, as the tools document them.
enum MigrationKeys {
    static let reflector = "reflector.v1.k8s.emberstack.com/"
    static let replicator = "replicator.v1.mittwald.de/"
    static let kubedSync = "kubed.appscode.com/sync"
    static let kubedOrigin = "kubed.appscode.com/origin"
}

private struct Translator {
    let tool: MigrationTool
    let input: MigrationInput
    var rules: [ReplicationRule] = []
    var comments: [String] = []
    var errors: [String] = []
    var copies: Set<ReplicaRef> = []
    var requests: [ReplicaRef: String] = [:]
    var ruleNames: Set<String> = []
    let namespaceNames: [String]

    init(tool: MigrationTool, input: MigrationInput) {
        self.tool = tool
        self.input = input
        namespaceNames = input.namespaces.map(\.name).sorted(by: utf8Less)
    }

    mutating func run() {
        switch tool {
        case .reflector: reflector()
        case .replicator: replicator()
        case .kubed: kubed()
        case .kyverno: kyverno()
        }
    }

    static func describe(_ o: ReplicaObject) -> String { "\(o.kind.rawValue) \(o.namespace)/\(o.name)" }

    /// A rule name (DNS label, unique) for a source.
    mutating func ruleName(_ base: String) -> String {
        var cleaned = ""
        for c in base.lowercased() {
            let ok = c.isASCII && (c.isLetter || c.isNumber)
            if ok { cleaned.append(c) } else if !cleaned.isEmpty && cleaned.last != "-" { cleaned.append("-") }
        }
        cleaned = Self.trimmed(String(Self.trimmed(cleaned, "-").prefix(56)), "-")
        if cleaned.isEmpty { cleaned = "rule" }
        var name = cleaned
        var n = 2
        while !ruleNames.insert(name).inserted {
            name = "\(cleaned)-\(n)"
            n += 1
        }
        return name
    }

    /// Namespace targets from a comma list of names and regular expressions (reflector, replicator). A plain name
    /// stays a name; a regex a glob can say (`team-.*`) becomes a pattern; any other regex becomes the namespaces it
    /// matches now, with a comment. An invalid regex is an error naming `what`.
    mutating func namespaceList(_ text: String, what: String) -> (names: [String], patterns: [String])? {
        var names: [String] = []
        var patterns: [String] = []
        for raw in text.split(separator: ",") {
            let entry = Self.trimmed(String(raw), " ")
            if entry.isEmpty { continue }
            if KubeNames.dns1123LabelProblems(entry).isEmpty {
                names.append(entry)
                continue
            }
            let body = entry.hasPrefix("^") ? String(entry.dropFirst()) : entry
            let anchored = body.hasSuffix("$") && !body.hasSuffix("\\$") ? String(body.dropLast()) : body
            if let glob = Self.glob(fromRegex: anchored) {
                patterns.append(glob)
                continue
            }
            let regex: Regex<AnyRegexOutput>
            do {
                regex = try Regex(anchored)
            } catch {
                errors.append("\(what): \(KubeNames.goQuote(entry)) is not a valid regular expression")
                return nil
            }
            let matching = namespaceNames.filter { (try? regex.wholeMatch(in: $0)) != nil }
            comments.append("\(what): regex \(KubeNames.goQuote(entry)) is not expressible as a glob; listed the \(matching.count) namespaces it matches now\(matching.isEmpty ? "" : ": " + matching.joined(separator: ", ")) (a namespace created later is not targeted: add it, or use a pattern or selector)")
            names += matching
        }
        return (names, patterns)
    }

    /// `team-.*`, `.*-prod`, `a.*b`: literals of namespace characters and `.*` only.
    static func glob(fromRegex r: String) -> String? {
        var out = ""
        var chars = Substring(r)
        var sawWildcard = false
        while let c = chars.first {
            if chars.hasPrefix(".*") {
                out += "*"
                sawWildcard = true
                chars = chars.dropFirst(2)
            } else if c.isASCII && (c.isLowercase || c.isNumber || c == "-") {
                out.append(c)
                chars = chars.dropFirst()
            } else {
                return nil
            }
        }
        return sawWildcard ? out : nil
    }

    /// A selector in its query form (`env=prod,tier in (a,b)`), as a `LabelSelector`.
    mutating func selector(_ text: String, what: String) -> LabelSelector? {
        do {
            let q = try LabelQuery(text)
            var s = LabelSelector()
            for r in q.requirements {
                switch r.op {
                case .equals: s.matchLabels[r.key] = r.values.first ?? ""
                case .notEquals: s.matchExpressions.append(.init(key: r.key, op: "NotIn", values: r.values))
                case .inSet: s.matchExpressions.append(.init(key: r.key, op: "In", values: r.values))
                case .notInSet: s.matchExpressions.append(.init(key: r.key, op: "NotIn", values: r.values))
                case .exists: s.matchExpressions.append(.init(key: r.key, op: "Exists"))
                case .doesNotExist: s.matchExpressions.append(.init(key: r.key, op: "DoesNotExist"))
                }
            }
            return s
        } catch {
            errors.append("\(what): \(KubeNames.goQuote(text)) is not a label selector: \(error.message)")
            return nil
        }
    }

    func isTrue(_ v: String?) -> Bool { v?.lowercased() == "true" }

    /// `s` without leading and trailing `c`.
    static func trimmed(_ s: String, _ c: Character) -> String {
        String(s.drop { $0 == c }.reversed().drop { $0 == c }.reversed())
    }

    /// Whether push `targets` write into namespace `ns` (as the planner chooses them, exclusions aside).
    func covers(_ targets: ReplicationRule.Targets, _ ns: String) -> Bool {
        targets.namespaces.contains(ns) || targets.namespacePatterns.contains { NamespaceGlob.matches($0, ns) }
            || (targets.namespaceSelector.map { sel in input.namespaces.first { $0.name == ns }.map { sel.matches($0.labels) } ?? false } ?? false)
    }

    /// Adds a rule replicating `source` by name into `targets` (nothing when the targets are empty).
    mutating func addRule(_ source: ReplicaObject, targets: ReplicationRule.Targets, mode: ReplicationRule.Mode = .sync,
                          copyLabels: [String] = [], copyAnnotations: [String] = [], nameSuffix: String = "") {
        guard !targets.namespaces.isEmpty || !targets.namespacePatterns.isEmpty || targets.namespaceSelector != nil else {
            comments.append("\(Self.describe(source)): configured for \(tool.rawValue) but targets no namespace; no rule")
            return
        }
        var t = targets
        t.namespaces = Array(Set(t.namespaces).subtracting([source.namespace])).sorted(by: utf8Less)
        t.namespacePatterns = Array(Set(t.namespacePatterns)).sorted(by: utf8Less)
        rules.append(ReplicationRule(
            name: ruleName("\(source.namespace)-\(source.name)\(source.kind == .configMap ? "-cm" : "")\(nameSuffix)"),
            source: .init(kind: source.kind, namespace: source.namespace, name: source.name), targets: t, mode: mode,
            copyLabels: copyLabels, copyAnnotations: copyAnnotations))
    }

    // MARK: reflector

    mutating func reflector() {
        let k = MigrationKeys.reflector
        let mirrors = input.objects.filter { $0.metadata.annotations[k + "reflects"] != nil }
        for source in input.objects where isTrue(source.metadata.annotations[k + "reflection-allowed"]) {
            let a = source.metadata.annotations
            let what = { (key: String) in "\(Self.describe(source)) annotation \(k)\(key)" }
            guard let allowed = namespaceList(a[k + "reflection-allowed-namespaces"] ?? "", what: what("reflection-allowed-namespaces")) else { continue }
            var allowSelector: LabelSelector?
            if let s = a[k + "reflection-allowed-namespaces-selector"] {
                guard let sel = selector(s, what: what("reflection-allowed-namespaces-selector")) else { continue }
                allowSelector = sel
            }
            let allowsAll = allowed.names.isEmpty && allowed.patterns.isEmpty && allowSelector == nil
            func isAllowed(_ ns: String) -> Bool {
                if allowsAll { return true }
                if allowed.names.contains(ns) || allowed.patterns.contains(where: { NamespaceGlob.matches($0, ns) }) { return true }
                guard let allowSelector, let n = input.namespaces.first(where: { $0.name == ns }) else { return false }
                return allowSelector.matches(n.labels)
            }
            var targets = ReplicationRule.Targets()
            if isTrue(a[k + "reflection-auto-enabled"]) {
                guard let auto = namespaceList(a[k + "reflection-auto-namespaces"] ?? "", what: what("reflection-auto-namespaces")) else { continue }
                var autoSelector: LabelSelector?
                if let s = a[k + "reflection-auto-namespaces-selector"] {
                    guard let sel = selector(s, what: what("reflection-auto-namespaces-selector")) else { continue }
                    autoSelector = sel
                }
                if auto.names.isEmpty && auto.patterns.isEmpty && autoSelector == nil {
                    // Auto-mirrors go to every allowed namespace.
                    if allowsAll {
                        targets.namespacePatterns = ["*"]
                    } else {
                        targets.namespaces = allowed.names
                        targets.namespacePatterns = allowed.patterns
                        targets.namespaceSelector = allowSelector
                    }
                } else {
                    // Auto namespaces outside the allowed list are not mirrored by reflector either.
                    targets.namespaces = auto.names.filter(isAllowed)
                    targets.namespacePatterns = auto.patterns
                    targets.namespaceSelector = autoSelector
                    if !allowsAll && (!auto.patterns.isEmpty || autoSelector != nil) {
                        comments.append("\(Self.describe(source)): reflection-auto-namespaces patterns/selector are not narrowed by reflection-allowed-namespaces in the policy; check the targets")
                    }
                }
            }
            // Manual mirrors (`reflects: NS/NAME`) in allowed namespaces: listed by name.
            for m in mirrors where m.kind == source.kind && m.metadata.annotations[k + "reflects"] == "\(source.namespace)/\(source.name)" {
                if isAllowed(m.namespace) {
                    targets.namespaces.append(m.namespace)
                } else {
                    comments.append("\(Self.describe(m)) reflects \(source.namespace)/\(source.name) from a namespace the source does not allow; not a target, left alone")
                }
            }
            addRule(source, targets: targets)
            for o in input.objects where o.kind == source.kind && o.name == source.name && o.namespace != source.namespace
                && (o.metadata.annotations[k + "reflects"] == "\(source.namespace)/\(source.name)") {
                copies.insert(ReplicaRef(o.kind, o.namespace, o.name))
            }
        }
        for m in mirrors {
            let ref = m.metadata.annotations[k + "reflects"] ?? ""
            let parts = ref.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count != 2 || parts.contains(where: \.isEmpty) {
                errors.append("\(Self.describe(m)) annotation \(k)reflects: \(KubeNames.goQuote(ref)) is not NAMESPACE/NAME")
            } else if !input.objects.contains(where: { $0.kind == m.kind && $0.namespace == String(parts[0]) && $0.name == String(parts[1]) }) {
                comments.append("\(Self.describe(m)) reflects \(ref), which does not exist; left alone")
            }
        }
    }

    // MARK: replicator

    mutating func replicator() {
        let k = MigrationKeys.replicator
        for source in input.objects {
            let a = source.metadata.annotations
            let what = { (key: String) in "\(Self.describe(source)) annotation \(k)\(key)" }
            let push = a[k + "replicate-to"]
            let matching = a[k + "replicate-to-matching"]
            let pull = isTrue(a[k + "replication-allowed"])
            guard push != nil || matching != nil || pull else { continue }
            var targets = ReplicationRule.Targets()
            if let push {
                guard let list = namespaceList(push, what: what("replicate-to")) else { continue }
                targets.namespaces = list.names
                targets.namespacePatterns = list.patterns
            }
            if let matching {
                guard let sel = selector(matching, what: what("replicate-to-matching")) else { continue }
                if push != nil {
                    comments.append("\(Self.describe(source)): replicate-to and replicate-to-matching are both set; the policy targets their union")
                }
                targets.namespaceSelector = sel
            }
            let sourceKey = "\(source.namespace)/\(source.name)"
            // Pull mode: a rule taking requests from the namespaces the source allows; the stubs there become
            // requests (a stub where a push form already writes the same name is that rule's copy).
            var requestTargets: ReplicationRule.Targets?
            if pull {
                guard let allowed = namespaceList(a[k + "replication-allowed-namespaces"] ?? "", what: what("replication-allowed-namespaces")) else { continue }
                let all = allowed.names.isEmpty && allowed.patterns.isEmpty
                var allow = ReplicationRule.Targets(requested: true)
                if all { allow.namespacePatterns = ["*"] } else { (allow.namespaces, allow.namespacePatterns) = (allowed.names, allowed.patterns) }
                requestTargets = allow
                for stub in input.objects where stub.kind == source.kind && stub.namespace != source.namespace
                    && stub.metadata.annotations[k + "replicate-from"] == sourceKey {
                    if stub.name == source.name && (push != nil || matching != nil) && covers(targets, stub.namespace) { continue }
                    if all || allowed.names.contains(stub.namespace) || allowed.patterns.contains(where: { NamespaceGlob.matches($0, stub.namespace) }) {
                        requests[ReplicaRef(stub.kind, stub.namespace, stub.name)] = sourceKey
                        copies.insert(ReplicaRef(stub.kind, stub.namespace, stub.name))
                    } else {
                        comments.append("\(Self.describe(stub)) pulls \(sourceKey) from a namespace the source does not allow; left alone")
                    }
                }
            }
            if isTrue(a[k + "keep-owner-references"]) {
                comments.append("\(Self.describe(source)): keep-owner-references is not carried over (dynsecret never copies owner references)")
            }
            var copyLabels: [String] = []
            var copyAnnotations: [String] = []
            let own = { (key: String) in key.hasPrefix(k) || key == ReplicaMarkers.lastApplied || ReplicaMarkers.reservedKeys.contains(key) }
            if !isTrue(a[k + "strip-labels"]) { copyLabels = source.metadata.labels.keys.filter { !own($0) }.sorted(by: utf8Less) }
            if !isTrue(a[k + "strip-annotations"]) { copyAnnotations = a.keys.filter { !own($0) }.sorted(by: utf8Less) }
            if push != nil || matching != nil { addRule(source, targets: targets, copyLabels: copyLabels, copyAnnotations: copyAnnotations) }
            if let requestTargets {
                addRule(source, targets: requestTargets, copyLabels: copyLabels, copyAnnotations: copyAnnotations, nameSuffix: "-requested")
            }
            for o in input.objects where o.kind == source.kind && o.name == source.name && o.namespace != source.namespace
                && (push != nil || matching != nil) && covers(targets, o.namespace) {
                let oa = o.metadata.annotations
                if oa[k + "replicated-from-version"] != nil || oa[k + "replicated-at"] != nil || oa[k + "replicate-from"] == sourceKey {
                    copies.insert(ReplicaRef(o.kind, o.namespace, o.name))
                }
            }
        }
        for stub in input.objects {
            guard let ref = stub.metadata.annotations[k + "replicate-from"] else { continue }
            let parts = ref.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count != 2 || parts.contains(where: \.isEmpty) {
                errors.append("\(Self.describe(stub)) annotation \(k)replicate-from: \(KubeNames.goQuote(ref)) is not NAMESPACE/NAME")
            }
        }
    }

    // MARK: kubed / config-syncer

    mutating func kubed() {
        for source in input.objects {
            guard let sync = source.metadata.annotations[MigrationKeys.kubedSync] else { continue }
            var targets = ReplicationRule.Targets()
            if Self.trimmed(sync, " ").isEmpty {
                targets.namespacePatterns = ["*"]
            } else {
                guard let sel = selector(sync, what: "\(Self.describe(source)) annotation \(MigrationKeys.kubedSync)") else { continue }
                targets.namespaceSelector = sel
            }
            addRule(source, targets: targets)
            for o in input.objects where o.kind == source.kind && o.name == source.name && o.namespace != source.namespace {
                if let origin = Self.kubedOrigin(o), origin == (source.namespace, source.name) { copies.insert(ReplicaRef(o.kind, o.namespace, o.name)) }
            }
        }
    }

    /// The source a kubed copy names: the `kubed.appscode.com/origin` annotation (JSON with namespace and name), or
    /// the `origin.namespace` / `origin.name` labels.
    static func kubedOrigin(_ o: ReplicaObject) -> (String, String)? {
        let m = o.metadata
        if let text = m.annotations[MigrationKeys.kubedOrigin], let v = try? JSONParser.parse(Array(text.utf8)),
           let ns = v["namespace"]?.stringValue, let name = v["name"]?.stringValue {
            return (ns, name)
        }
        if let ns = m.labels[MigrationKeys.kubedOrigin + ".namespace"], let name = m.labels[MigrationKeys.kubedOrigin + ".name"] { return (ns, name) }
        return nil
    }

    // MARK: Kyverno

    mutating func kyverno() {
        for (object, origin) in input.kyvernoPolicies {
            let policyKind = object["kind"]?.stringValue ?? ""
            let policyName = object["metadata"]?["name"]?.stringValue ?? ""
            for (i, rule) in (object["spec"]?["rules"]?.arrayValue ?? []).enumerated() {
                guard let generate = rule["generate"] else { continue }
                let ruleName = rule["name"]?.stringValue ?? "rule-\(i)"
                let at = "\(origin): \(policyKind) \(policyName) spec.rules[\(i)] (\(ruleName))"
                kyvernoRule(rule, generate: generate, policy: policyName, ruleName: ruleName, at: at)
            }
        }
    }

    mutating func kyvernoRule(_ rule: JSONValue, generate g: JSONValue, policy: String, ruleName: String, at: String) {
        let kindText = g["kind"]?.stringValue ?? ""
        guard let kind = ReplicatedKind(rawValue: kindText) else {
            comments.append("\(at): generates a \(kindText.isEmpty ? "resource without a kind" : kindText); only Secrets and ConfigMaps are replicated, skipped")
            return
        }
        for unsupported in ["preconditions", "context", "celPreconditions"] where rule[unsupported] != nil {
            errors.append("\(at): \(unsupported) is not expressible in a ReplicationPolicy; remove the rule from the input or migrate it by hand")
            return
        }
        // The trigger must be Namespaces, each generating into itself.
        let match = rule["match"]
        let blocks = (match?["any"]?.arrayValue ?? match?["all"]?.arrayValue ?? []) + (match?["resources"].map { [JSONValue.object(JSONObject([("resources", $0)]))] } ?? [])
        guard !blocks.isEmpty, blocks.allSatisfy({ ($0["resources"]?["kinds"]?.arrayValue ?? []).compactMap(\.stringValue) == ["Namespace"] }) else {
            errors.append("\(at): match must select Namespaces only (resources.kinds: [Namespace]) to be expressible")
            return
        }
        var targets = ReplicationRule.Targets()
        for b in blocks {
            let r = b["resources"]
            let names = (r?["names"]?.arrayValue ?? []).compactMap(\.stringValue)
            for n in names {
                if n.contains("?") || n.contains("*") { targets.namespacePatterns.append(n) } else { targets.namespaces.append(n) }
            }
            if let sel = r?["selector"]?.objectValue {
                do {
                    targets.namespaceSelector = try LabelSelector.decode(sel, path: "match.resources.selector")
                } catch {
                    errors.append("\(at): \(error.description)")
                    return
                }
            }
            if names.isEmpty && r?["selector"] == nil { targets.namespacePatterns.append("*") }
        }
        if blocks.count > 1 && targets.namespaceSelector != nil {
            comments.append("\(at): several match blocks; the policy targets their union")
        }
        for e in (rule["exclude"]?["any"]?.arrayValue ?? rule["exclude"]?["all"]?.arrayValue ?? []) {
            for n in (e["resources"]?["names"]?.arrayValue ?? []).compactMap(\.stringValue) {
                if n.contains("*") || n.contains("?") {
                    errors.append("\(at): exclude name pattern \(KubeNames.goQuote(n)) is not expressible (excludeNamespaces takes names)")
                    return
                }
                targets.excludeNamespaces.append(n)
            }
        }
        let targetNamespace = g["namespace"]?.stringValue ?? ""
        if !targetNamespace.contains("{{") {
            targets = ReplicationRule.Targets(namespaces: [targetNamespace])
            comments.append("\(at): generates into the fixed namespace \(targetNamespace)")
        } else if String(targetNamespace.filter { $0 != " " }) != "{{request.object.metadata.name}}" {
            errors.append("\(at): generate.namespace \(KubeNames.goQuote(targetNamespace)) is not expressible (only {{request.object.metadata.name}} or a fixed namespace)")
            return
        }
        let mode: ReplicationRule.Mode = g["synchronize"] == .bool(true) ? .sync : .createOnly
        let copiesOf = { (o: ReplicaObject) in
            o.metadata.labels["generate.kyverno.io/policy-name"] == policy && o.metadata.labels["generate.kyverno.io/rule-name"] == ruleName
        }
        if let clone = g["clone"], let ns = clone["namespace"]?.stringValue, let name = clone["name"]?.stringValue {
            guard let source = input.objects.first(where: { $0.kind == kind && $0.namespace == ns && $0.name == name }) else {
                errors.append("\(at): clone source \(kind.rawValue) \(ns)/\(name) not found")
                return
            }
            let generated = g["name"]?.stringValue ?? name
            guard !generated.contains("{{") else {
                errors.append("\(at): generate.name \(KubeNames.goQuote(generated)) is not expressible")
                return
            }
            addRule(source, targets: targets, mode: mode)
            if generated != name, !rules.isEmpty { rules[rules.count - 1].targetName = generated }
            for o in input.objects where o.kind == kind && o.name == generated && copiesOf(o) { copies.insert(ReplicaRef(o.kind, o.namespace, o.name)) }
        } else if let list = g["cloneList"], let ns = list["namespace"]?.stringValue {
            let kinds = (list["kinds"]?.arrayValue ?? []).compactMap(\.stringValue)
            guard kinds == ["v1/\(kind.rawValue)"] || kinds == [kind.rawValue] else {
                errors.append("\(at): cloneList kinds \(kinds) are not expressible by one rule (one kind per rule)")
                return
            }
            var selector: LabelSelector?
            if let sel = list["selector"]?.objectValue {
                do { selector = try LabelSelector.decode(sel, path: "generate.cloneList.selector") } catch {
                    errors.append("\(at): \(error.description)")
                    return
                }
            }
            guard let selector, !(selector.matchLabels.isEmpty && selector.matchExpressions.isEmpty) else {
                errors.append("\(at): cloneList without a selector copies every \(kind.rawValue) of \(ns); give the policy a selector")
                return
            }
            var t = targets
            t.namespacePatterns = Array(Set(t.namespacePatterns)).sorted(by: utf8Less)
            rules.append(ReplicationRule(name: self.ruleName(ruleName), source: .init(kind: kind, namespace: ns, selector: selector), targets: t, mode: mode))
            for o in input.objects where o.kind == kind && copiesOf(o) { copies.insert(ReplicaRef(o.kind, o.namespace, o.name)) }
        } else {
            errors.append("\(at): generate.data (content written in the policy) is not a replication of a source; not expressible")
        }
    }
}

extension ReplicationPolicy {
    /// The policy as a `ReplicationPolicy` document (what `load` reads back to an equal policy).
    public var json: JSONValue {
        func strings(_ a: [String]) -> JSONValue { .array(a.map(JSONValue.string)) }
        func selector(_ s: LabelSelector) -> JSONValue {
            var o = JSONObject()
            if !s.matchLabels.isEmpty { o["matchLabels"] = .object(JSONObject(s.matchLabels.sorted { utf8Less($0.key, $1.key) }.map { ($0.key, .string($0.value)) })) }
            if !s.matchExpressions.isEmpty {
                o["matchExpressions"] = .array(s.matchExpressions.map { r in
                    var e = JSONObject([("key", .string(r.key)), ("operator", .string(r.op))])
                    if !r.values.isEmpty { e["values"] = strings(r.values) }
                    return .object(e)
                })
            }
            return .object(o)
        }
        let rules: [JSONValue] = self.rules.map { r in
            var source = JSONObject()
            if r.source.kind != .secret { source["kind"] = .string(r.source.kind.rawValue) }
            if r.source.isMinted { source["credentials"] = strings(r.source.credentials) } else { source["namespace"] = .string(r.source.namespace) }
            if let n = r.source.name { source["name"] = .string(n) }
            if let s = r.source.selector { source["selector"] = selector(s) }
            var targets = JSONObject()
            if !r.targets.namespaces.isEmpty { targets["namespaces"] = strings(r.targets.namespaces) }
            if !r.targets.namespacePatterns.isEmpty { targets["namespacePatterns"] = strings(r.targets.namespacePatterns) }
            if let s = r.targets.namespaceSelector { targets["namespaceSelector"] = selector(s) }
            if !r.targets.excludeNamespaces.isEmpty { targets["excludeNamespaces"] = strings(r.targets.excludeNamespaces) }
            if r.targets.requested { targets["requested"] = .bool(true) }
            if r.targets.clusters != [ReplicationScope.localCluster] { targets["clusters"] = strings(r.targets.clusters) }
            var o = JSONObject([("name", .string(r.name)), ("source", .object(source)), ("targets", .object(targets))])
            if let t = r.targetName { o["targetName"] = .string(t) }
            if r.mode != .sync { o["mode"] = .string(r.mode.rawValue) }
            if r.onConflict != .skip { o["onConflict"] = .string(r.onConflict.rawValue) }
            if !r.prune { o["prune"] = .bool(false) }
            if r.onSourceDelete != .retain { o["onSourceDelete"] = .string(r.onSourceDelete.rawValue) }
            if !r.serviceAccounts.isEmpty { o["serviceAccounts"] = strings(r.serviceAccounts) }
            if !r.copyLabels.isEmpty { o["copyLabels"] = strings(r.copyLabels) }
            if !r.copyAnnotations.isEmpty { o["copyAnnotations"] = strings(r.copyAnnotations) }
            return .object(o)
        }
        var spec = JSONObject()
        if excludeNamespaces != ReplicationPolicy.defaultExcludedNamespaces { spec["excludeNamespaces"] = strings(excludeNamespaces) }
        if !clusters.isEmpty {
            spec["clusters"] = .array(clusters.map { c in
                var o = JSONObject([("name", .string(c.name))])
                switch c.access {
                case .kubeconfigSecret(let ns, let n, let key):
                    o["kubeconfigSecret"] = .object(JSONObject([("namespace", .string(ns)), ("name", .string(n)), ("key", .string(key))]))
                case .context(let ctx): o["context"] = .string(ctx)
                case .contextPattern(let p): o["contextPattern"] = .string(p)
                }
                if !c.namespaces.isEmpty { o["namespaces"] = strings(c.namespaces) }
                return .object(o)
            })
        }
        if onClusterRemove != .retain { spec["onClusterRemove"] = .string(onClusterRemove.rawValue) }
        if !credentials.isEmpty {
            func goDuration(_ d: Duration) -> JSONValue { .string("\(d.components.seconds)s") }
            spec["credentials"] = .array(credentials.map { c in
                var o = JSONObject([("name", .string(c.name))])
                switch c.provider {
                case .exec(let e):
                    var x = JSONObject([("command", .string(e.command))])
                    if !e.args.isEmpty { x["args"] = strings(e.args) }
                    if !e.env.isEmpty { x["env"] = .array(e.env.map { .object(JSONObject([("name", .string($0.name)), ("value", .string($0.value))])) }) }
                    x["image"] = .string(e.image)
                    x["apiVersion"] = .string(e.apiVersion)
                    x["timeout"] = goDuration(e.timeout)
                    x["defaultCacheDuration"] = goDuration(e.defaultCacheDuration)
                    o["exec"] = .object(x)
                case .ecr(let e):
                    var x = JSONObject([("region", .string(e.region))])
                    if !e.registryIDs.isEmpty { x["registryIds"] = strings(e.registryIDs) }
                    o["ecr"] = .object(x)
                case .google(let g):
                    o["google"] = .object(JSONObject([("registries", strings(g.registries))]))
                }
                switch c.refresh {
                case .atFraction(let f): o["refresh"] = .object(JSONObject([("atFraction", .number(String(f)))]))
                case .before(let d): o["refresh"] = .object(JSONObject([("before", goDuration(d))]))
                }
                return .object(o)
            })
        }
        spec["rules"] = .array(rules)
        return .object(JSONObject([
            ("apiVersion", .string(ReplicationPolicy.apiVersion)), ("kind", .string(ReplicationPolicy.kind)),
            ("metadata", .object(JSONObject([("name", .string(name))]))), ("spec", .object(spec)),
        ]))
    }
}
