/// The replication planner: a pure, deterministic function from a policy and the cluster state to ordered actions.
///
/// Safety by construction: a Secret that is not ours (both labels, a rule of this policy, this target's source) is
/// only updated or deleted when its rule says `adopt` or `overwrite`, and another policy's replica never is; prune
/// deletes only provable replicas; sources are never written; every update and delete carries the object's uid and
/// resourceVersion; content (type + data) is compared,
/// never versions; a type change or an immutable replica is replaced by delete + create only when the object is ours
/// (or the rule says `overwrite`); two rules writing one target produce a report naming both and no write.
public enum ReplicationPlanner {
    /// The plan for one cluster (`scope`: the hub by default); `state` holds that cluster's objects and, for a
    /// member, the hub's sources as `ReplicationState.sources`.
    public static func plan(_ policy: ReplicationPolicy, _ state: ReplicationState, scope: ReplicationScope = .local) -> ReplicationPlan {
        var planner = Run(policy: policy, state: state, scope: scope)
        return planner.run()
    }

    /// Whether `secret` is a source of `rule`: the named Secret, or a Secret of the source namespace that the
    /// selector matches and that is neither a replica nor of a type never copied.
    public static func isSource(_ secret: Secret, of rule: ReplicationRule) -> Bool {
        isSource(secret.metadata, type: secret.effectiveType, of: rule)
    }

    /// Whether `source` is a source of `rule` (as `isSource(_:of:)` for a Secret).
    public static func isSource(_ source: SourceObject, of rule: ReplicationRule) -> Bool {
        isSource(source.metadata, type: source.type, kind: source.kind, of: rule)
    }

    static func isSource(_ meta: ObjectMeta, type: String, kind: ReplicatedKind = .secret, of rule: ReplicationRule) -> Bool {
        guard kind == rule.source.kind, (meta.namespace ?? "default") == rule.source.namespace else { return false }
        if rule.source.isMinted { return meta.name == ReplicationRule.Source.mintedName(rule.source.credentials) }
        if let name = rule.source.name { return meta.name == name }
        guard let selector = rule.source.selector else { return false }
        return Run.isSelected(meta, type: type, kind: kind, namespace: rule.source.namespace, selector: selector)
    }

    private struct Intent {
        var rule: Int
        var source: SourceObject
        var namespace: String
        var name: String
        /// A copy a namespace owner asked for (pull mode): the object at the target carries the request.
        var requested = false
        var ref: ReplicaRef { ReplicaRef(source.kind, namespace, name) }
    }

    /// An object carrying `dynsecret.io/replicate-from`, and the source key it names (nil: not `NAMESPACE/NAME`).
    private struct Request {
        var target: TargetObject
        var source: String?
    }

    private struct Run {
        let policy: ReplicationPolicy
        let scope: ReplicationScope
        let namespaces: [String: ReplicationNamespace]
        let sources: [ReplicaRef: SourceObject]
        let targets: [ReplicaRef: TargetObject]
        /// Whole objects, where the state has them (`ReplicationState.secrets`, `.configMaps`).
        let stored: [ReplicaRef: ReplicaObject]
        let serviceAccounts: [String: ServiceAccount]
        var actions: [(order: (String, Int, String, Int), action: ReplicationAction)] = []
        var replicas: [ReplicaRef: ReplicaObject] = [:]
        /// SA key → (rule order, names wanted).
        var wantedPullSecrets: [String: [String]] = [:]
        var wantedBy: [String: Set<String>] = [:]
        /// Requests of the kinds some rule takes requests for, in ref order.
        let requests: [Request]
        /// Requests a requested rule serves, and those refused, with each refusing rule and why.
        var served: Set<ReplicaRef> = []
        var refused: [ReplicaRef: [(rule: String, why: String)]] = [:]

        init(policy: ReplicationPolicy, state: ReplicationState, scope: ReplicationScope) {
            self.policy = policy
            self.scope = scope
            namespaces = Dictionary(state.namespaces.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            // The first of several objects with one key wins, whichever form it came in.
            let whole = state.objects
            var sources: [ReplicaRef: SourceObject] = [:]
            var targets: [ReplicaRef: TargetObject] = [:]
            var stored: [ReplicaRef: ReplicaObject] = [:]
            for o in whole {
                let ref = ReplicaRef(o.kind, o.namespace, o.name)
                guard stored[ref] == nil else { continue }
                stored[ref] = o
                // A member's objects are never sources: those are the hub's, in `state.sources`.
                switch o {
                case .secret(let s):
                    if scope.isHub { sources[ref] = SourceObject(s) }
                    targets[ref] = TargetObject(s)
                case .configMap(let c):
                    if scope.isHub { sources[ref] = SourceObject(c) }
                    targets[ref] = TargetObject(c)
                }
            }
            for s in state.sources where sources[s.ref] == nil { sources[s.ref] = s }
            for t in state.targets where targets[t.ref] == nil { targets[t.ref] = t }
            self.sources = sources
            self.targets = targets
            self.stored = stored
            let requestedKinds = policy.requestedKinds
            requests = requestedKinds.isEmpty ? [] : targets.keys.sorted().compactMap { ref in
                guard requestedKinds.contains(ref.kind), let t = targets[ref], let value = t.annotations[ReplicaMarkers.requestAnnotation] else { return nil }
                return Request(target: t, source: ReplicaMarkers.requestedSource(value))
            }
            serviceAccounts = Dictionary(state.serviceAccounts.map { (Run.key($0.metadata), $0) }, uniquingKeysWith: { a, _ in a })
        }

        static func key(_ m: ObjectMeta) -> String { (m.namespace ?? "default") + "/" + (m.name ?? "") }

        /// Emits a report that the request on `namespace/name` is not served.
        mutating func refuse(_ kind: ReplicatedKind, namespace: String, name: String, rules: [String], reason: String) {
            var a = ReplicationAction(.report, kind, namespace: namespace, name: name, rules: rules, reason: reason)
            a.refusesRequest = true
            emit(a)
        }

        mutating func emit(_ a: ReplicationAction) {
            let cls: Int
            switch a.kind {
            case .delete, .create, .update: cls = 0
            case .patchServiceAccount: cls = 1
            case .report: cls = 2
            }
            actions.append(((a.namespace, cls, a.name, actions.count), a))
        }

        func ruleID(_ rule: ReplicationRule) -> String { policy.name + "/" + rule.name }

        mutating func run() -> ReplicationPlan {
            var intents: [ReplicaRef: [Intent]] = [:]
            var sourceOf: [ReplicaRef: String] = [:]
            for (i, rule) in policy.rules.enumerated() {
                let (sources, list) = targets(of: rule, index: i)
                for s in sources where sourceOf[s.ref] == nil { sourceOf[s.ref] = rule.name }
                for intent in list { intents[intent.ref, default: []].append(intent) }
            }
            reportRequests(intents: intents)
            for ref in sourceOf.keys.sorted() where scope.isHub {
                guard let s = sources[ref], ReplicaMarkers.isOwned(s.metadata) else { continue }
                emit(.init(.report, ref.kind, namespace: s.namespace, name: s.name, rules: [sourceOf[ref]!],
                           reason: "source \(ref) carries replica markers (\(s.metadata.annotations[ReplicaMarkers.ruleAnnotation] ?? "no rule")); used as a source, never updated or pruned"))
            }
            for ref in intents.keys.sorted() {
                let list = intents[ref]!
                let ruleNames = Array(Set(list.map { policy.rules[$0.rule].name })).sorted(by: utf8Less)
                if scope.isHub, let owner = sourceOf[ref] {
                    emit(.init(.report, ref.kind, namespace: list[0].namespace, name: list[0].name, rules: ruleNames,
                               reason: "conflict: this \(ref.kind.rawValue) is the source of rule \(owner); never a target"))
                    continue
                }
                if ruleNames.count > 1 {
                    emit(.init(.report, ref.kind, namespace: list[0].namespace, name: list[0].name, rules: ruleNames,
                               reason: "conflict: rules \(ruleNames.joined(separator: " and ")) both write this \(ref.kind.rawValue); nothing written"))
                    continue
                }
                reconcile(list[0])
            }
            prune(desired: Set(intents.keys), sources: Set(sourceOf.keys))
            patchServiceAccounts()
            let ordered = actions.sorted { a, b in
                if a.order.0 != b.order.0 { return utf8Less(a.order.0, b.order.0) }
                if a.order.1 != b.order.1 { return a.order.1 < b.order.1 }
                if a.order.2 != b.order.2 { return utf8Less(a.order.2, b.order.2) }
                return a.order.3 < b.order.3
            }.map(\.action)
            let finalSAs = serviceAccountsAfter(ordered)
            return ReplicationPlan(
                policy: policy.name, actions: ordered,
                replicas: replicas.keys.sorted().map { replicas[$0]! },
                serviceAccounts: finalSAs
            )
        }

        // MARK: targets

        mutating func targets(of rule: ReplicationRule, index: Int) -> (sources: [SourceObject], intents: [Intent]) {
            let src = rule.source
            var sources: [SourceObject] = []
            let kind = src.kind
            if src.isMinted {
                let name = ReplicationRule.Source.mintedName(src.credentials)
                if let s = self.sources[ReplicaRef(.secret, "", name)] {
                    sources = [s]
                } else if scope.isHub {
                    emit(.init(.report, kind, namespace: "", name: rule.targetName ?? name, rules: [rule.name], reason: "credentials \(name) not minted yet"))
                }
            } else if let name = src.name {
                if let s = self.sources[ReplicaRef(kind, src.namespace, name)] {
                    sources = [s]
                } else if scope.isHub {
                    emit(.init(.report, kind, namespace: src.namespace, name: name, rules: [rule.name], reason: "source \(kind.rawValue) \(src.namespace)/\(name) not found"))
                }
            } else if let selector = src.selector {
                sources = self.sources.values
                    .filter { $0.kind == kind && Run.isSelected($0.metadata, type: $0.type, kind: kind, namespace: src.namespace, selector: selector) }
                    .sorted { utf8Less($0.name, $1.name) }
            }
            // No rule writes into a namespace that holds sources of the policy: replicas never feed other rules,
            // so one pass reaches the fixed point.
            guard scope.isTargeted(by: rule) else { return (sources, []) }
            // In a member cluster the source namespaces are namespaces like any other: the sources are the hub's.
            let sourceNamespaces = scope.isHub ? Set(policy.rules.map(\.source.namespace).filter { !$0.isEmpty }) : []
            let excluded = Set(policy.excludeNamespaces).union(rule.targets.excludeNamespaces).union(sourceNamespaces)
            let requested = rule.targets.requested
            var chosen: Set<String> = []
            for ns in rule.targets.namespaces where !requested {
                if sourceNamespaces.contains(ns) && !policy.excludeNamespaces.contains(ns) && !rule.targets.excludeNamespaces.contains(ns) {
                    emit(.init(.report, kind, namespace: ns, name: rule.targetName ?? src.name ?? "*", rules: [rule.name], reason: "namespace \(ns) holds sources of the policy; never a target"))
                } else if excluded.contains(ns) {
                    emit(.init(.report, kind, namespace: ns, name: rule.targetName ?? src.name ?? "*", rules: [rule.name], reason: "target namespace \(ns) is listed but excluded (excludeNamespaces); skipped"))
                } else if namespaces[ns] == nil {
                    emit(.init(.report, kind, namespace: ns, name: rule.targetName ?? src.name ?? "*", rules: [rule.name], reason: "target namespace \(ns) not found"))
                }
                chosen.insert(ns)
            }
            if requested { return (sources, requestedTargets(of: rule, index: index, sources: sources, excluded: excluded, sourceNamespaces: sourceNamespaces)) }
            for ns in namespaces.values {
                if rule.targets.namespacePatterns.contains(where: { NamespaceGlob.matches($0, ns.name) }) { chosen.insert(ns.name) }
                if let sel = rule.targets.namespaceSelector, sel.matches(ns.labels) { chosen.insert(ns.name) }
            }
            var out: [Intent] = []
            for ns in chosen.sorted(by: utf8Less) {
                guard let namespace = namespaces[ns], !excluded.contains(ns) else { continue }
                if namespace.terminating {
                    emit(.init(.report, kind, namespace: ns, name: rule.targetName ?? src.name ?? "*", rules: [rule.name], reason: "namespace \(ns) is terminating; skipped"))
                    continue
                }
                for s in sources {
                    out.append(Intent(rule: index, source: s, namespace: ns, name: rule.targetName ?? s.name))
                }
            }
            return (sources, out)
        }

        /// Pull mode: a copy for each request naming one of `sources` in a namespace the rule allows (its
        /// namespaces, patterns and selector, minus exclusions and source namespaces; not terminating), at the
        /// requesting object's name. A request the rule does not allow is remembered with why, for `reportRequests`.
        mutating func requestedTargets(of rule: ReplicationRule, index: Int, sources: [SourceObject], excluded: Set<String>,
                                       sourceNamespaces: Set<String>) -> [Intent] {
            let byKey = Dictionary(sources.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
            var out: [Intent] = []
            for request in requests where request.target.kind == rule.source.kind {
                guard let key = request.source, let source = byKey[key] else { continue }
                let t = request.target, ns = t.namespace
                var why: String?
                if sourceNamespaces.contains(ns) {
                    why = "namespace \(ns) holds sources of the policy"
                } else if excluded.contains(ns) {
                    why = "namespace \(ns) is excluded (excludeNamespaces)"
                } else if !(rule.targets.namespaces.contains(ns) || rule.targets.namespacePatterns.contains { NamespaceGlob.matches($0, ns) }
                            || (rule.targets.namespaceSelector.map { sel in namespaces[ns].map { sel.matches($0.labels) } ?? false } ?? false)) {
                    why = "the rule does not allow namespace \(ns)"
                } else if namespaces[ns]?.terminating ?? true {
                    why = "namespace \(ns) is \(namespaces[ns] == nil ? "not found" : "terminating")"
                }
                if let why {
                    refused[t.ref, default: []].append((rule.name, why))
                } else {
                    served.insert(t.ref)
                    out.append(Intent(rule: index, source: source, namespace: ns, name: t.name, requested: true))
                }
            }
            return out
        }

        /// Reports each request no rule serves: a value that is not `NAMESPACE/NAME`, a source whose requested rules
        /// all refuse the namespace (each named, with why), or a source only rules without `targets.requested`
        /// replicate. A request naming nothing this policy replicates is another policy's business: not reported.
        mutating func reportRequests(intents: [ReplicaRef: [Intent]]) {
            for request in requests where !served.contains(request.target.ref) && intents[request.target.ref] == nil {
                let t = request.target
                let value = t.annotations[ReplicaMarkers.requestAnnotation] ?? ""
                let what = "\(t.kind.rawValue) \(t.key) requests \(value) (\(ReplicaMarkers.requestAnnotation))"
                guard let key = request.source else {
                    refuse(t.kind, namespace: t.namespace, name: t.name, rules: [],
                               reason: "\(ReplicaMarkers.requestAnnotation): \(KubeNames.goQuote(value)) on \(t.kind.rawValue) \(t.key) is not NAMESPACE/NAME; nothing copied")
                    continue
                }
                if let refusals = refused[t.ref] {
                    let rules = Array(Set(refusals.map(\.rule))).sorted(by: utf8Less)
                    refuse(t.kind, namespace: t.namespace, name: t.name, rules: rules,
                           reason: "\(what), refused: " + refusals.map { "rule \($0.rule): \($0.why)" }.joined(separator: "; "))
                    continue
                }
                let pushing = policy.rules.filter { r in
                    r.source.kind == t.kind && !r.targets.requested && sources.values.contains { $0.key == key && ReplicationPlanner.isSource($0, of: r) }
                }.map(\.name)
                if !pushing.isEmpty {
                    refuse(t.kind, namespace: t.namespace, name: t.name, rules: pushing,
                           reason: "\(what), but rule \(pushing.joined(separator: ", ")) does not take requests (targets.requested); nothing copied")
                }
            }
        }

        /// An object a selector source picks: in the source namespace, matching, not a dynsecret replica, and (a
        /// Secret) not a ServiceAccount token or a Helm release (never copied, whatever the selector says).
        static func isSelected(_ m: ObjectMeta, type: String, kind: ReplicatedKind, namespace: String, selector: LabelSelector) -> Bool {
            (m.namespace ?? "default") == namespace && !ReplicaMarkers.isOwned(m)
                && (kind != .secret || !ReplicationRule.neverSelectedTypes.contains(type.isEmpty ? SecretType.opaque : type)) && selector.matches(m.labels)
        }

        enum Owner: Equatable { case ours, foreign, otherPolicy(String), otherHub(String) }

        /// Ours: both replica labels, `dynsecret.io/rule` naming a rule of this policy, and `dynsecret.io/source` naming
        /// `sourceKey`. (A differing `dynsecret.io/source-uid` — the source was deleted and recreated — is still ours.)
        /// Both labels and a rule of another policy: that policy's replica, never adopted or overwritten.
        func owner(_ s: TargetObject, sourceKey: String) -> Owner {
            guard ReplicaMarkers.isOwned(labels: s.labels), let id = s.annotations[ReplicaMarkers.ruleAnnotation] else { return .foreign }
            if let hub = s.annotations[ReplicaMarkers.sourceClusterAnnotation], hub != scope.hub { return .otherHub(hub) }
            if let slash = id.firstIndex(of: "/"), id[..<slash] != policy.name { return .otherPolicy(String(id[..<slash])) }
            guard policy.rules.contains(where: { ruleID($0) == id }),
                  s.annotations[ReplicaMarkers.sourceAnnotation] == sourceKey else { return .foreign }
            return .ours
        }

        // MARK: create / update

        func desired(_ intent: Intent) -> ReplicaObject {
            let rule = policy.rules[intent.rule]
            let source = intent.source
            var meta = ObjectMeta(name: intent.name, namespace: intent.namespace)
            // A requested copy keeps what the requesting object carries (the request above all), also when it is
            // replaced.
            if intent.requested, let request = targets[intent.ref] {
                meta.labels = request.labels
                // The requester's own copies of dynsecret's markers never stand: ours are set below.
                meta.annotations = request.annotations.filter { !ReplicaMarkers.annotationKeys.contains($0.key) && $0.key != ReplicaMarkers.lastApplied }
            }
            for k in rule.copyLabels { if let v = source.metadata.labels[k] { meta.labels[k] = v } }
            for k in rule.copyAnnotations where k != ReplicaMarkers.lastApplied { if let v = source.metadata.annotations[k] { meta.annotations[k] = v } }
            meta.labels[ReplicaMarkers.managedByLabel] = ReplicaMarkers.managedByValue
            meta.labels[ReplicaMarkers.replicaLabel] = "true"
            meta.annotations[ReplicaMarkers.sourceAnnotation] = source.key
            if let uid = source.metadata.uid { meta.annotations[ReplicaMarkers.sourceUIDAnnotation] = uid }
            meta.annotations[ReplicaMarkers.ruleAnnotation] = ruleID(rule)
            meta.annotations[ReplicaMarkers.contentHashAnnotation] = source.contentHash
            if let hub = scope.hub { meta.annotations[ReplicaMarkers.sourceClusterAnnotation] = hub }
            return Run.object(source.kind, meta, content: source)
        }

        /// An object of `kind` with `meta` and the content (type, data, immutability) of `content`.
        static func object(_ kind: ReplicatedKind, _ meta: ObjectMeta, content: SourceObject) -> ReplicaObject {
            let immutable = content.immutable == true ? true : nil
            switch kind {
            case .secret:
                return .secret(Secret(metadata: meta, type: content.type, data: content.data, immutable: immutable))
            case .configMap:
                return .configMap(ConfigMap(metadata: meta, data: content.data.mapValues { String(decoding: $0, as: UTF8.self) },
                                            binaryData: content.binaryData, immutable: immutable))
            }
        }

        mutating func reconcile(_ intent: Intent) {
            let rule = policy.rules[intent.rule]
            let want = desired(intent)
            let wantMeta = want.metadata
            let kind = intent.source.kind
            let what = kind.rawValue
            let ns = intent.namespace, name = intent.name
            let key = intent.ref.key
            guard let existing = targets[intent.ref] else {
                emit(.init(.create, namespace: ns, name: name, rules: [rule.name], reason: "replica of \(intent.source.key) missing", object: want))
                manage(rule, want)
                return
            }
            let sourceKey = intent.source.key
            let ownership = owner(existing, sourceKey: sourceKey)
            // Another policy's (or hub's) replica is never adopted or overwritten, whatever onConflict says: two
            // policies would otherwise take the object from each other on every pass.
            let holder: String? = switch ownership {
            case .otherHub(let hub): "written by hub \(hub)"
            case .otherPolicy(let policy): "of policy \(policy)"
            case .ours, .foreign: nil
            }
            if let holder {
                var a = ReplicationAction(.report, kind, namespace: ns, name: name, rules: [rule.name],
                                          reason: "conflict: \(what) \(key) is a replica \(holder); left alone (never adopted or overwritten)")
                a.refusesRequest = intent.requested
                emit(a)
                return
            }
            let owned = ownership == .ours
            let markers = ReplicaMarkers.isOwned(labels: existing.labels)
            let pre = ReplicationPrecondition(uid: existing.uid, resourceVersion: existing.resourceVersion)
            // A request is its owner's consent to adopt the object (keeping its own labels and annotations), in any
            // mode; it never allows more (overwrite, or replacing an object that is not ours).
            let onConflict = intent.requested ? .adopt : rule.onConflict
            if !owned && !intent.requested && (onConflict == .skip || rule.mode == .createOnly) {
                let whose = markers ? "is not a replica of \(sourceKey) by a rule of policy \(policy.name)" : "is not managed by dynsecret"
                emit(.init(.report, kind, namespace: ns, name: name, rules: [rule.name],
                           reason: "conflict: \(what) \(key) exists and \(whose); left alone (onConflict: \(rule.mode == .createOnly ? "create-only" : "skip"))"))
                return
            }
            let typeDiffers = existing.type != intent.source.type
            // The stored content's hash, computed when the object was read, against the source's.
            let dataDiffers = typeDiffers || existing.contentHash != intent.source.contentHash
            let managedLabels = ReplicaMarkers.labelKeys.union(rule.copyLabels)
            let managedAnnotations = ReplicaMarkers.annotationKeys.union(rule.copyAnnotations)
            let metaDiffers = managedLabels.contains { existing.labels[$0] != wantMeta.labels[$0] }
                || managedAnnotations.contains { existing.annotations[$0] != wantMeta.annotations[$0] }
                || (onConflict == .overwrite && !owned && (existing.labels != wantMeta.labels || existing.annotations != wantMeta.annotations))
            let wantImmutable = intent.source.immutable == true
            let immutableDiffers = (existing.immutable ?? false) != wantImmutable
            if !dataDiffers && !metaDiffers && !immutableDiffers && !existing.hasStringData {
                manage(rule, object(existing, content: intent.source))
                return
            }
            if owned && rule.mode == .createOnly {
                emit(.init(.report, kind, namespace: ns, name: name, rules: [rule.name], reason: "replica differs from its source; not updated (mode: create-only)"))
                manage(rule, object(existing, content: nil))
                return
            }
            let needsReplace = typeDiffers || (existing.immutable == true && (dataDiffers || immutableDiffers))
            let how = owned ? "" : (intent.requested ? "adopt (requested): " : (onConflict == .adopt ? "adopt: " : "overwrite: "))
            if needsReplace {
                guard owned || onConflict == .overwrite else {
                    let problem = typeDiffers ? "type differs" : "it is immutable"
                    let fix = !intent.requested ? "" : typeDiffers ? " (request with a \(what) of type \(intent.source.type))" : " (request with an object that is not immutable)"
                    var a = ReplicationAction(.report, kind, namespace: ns, name: name, rules: [rule.name],
                                              reason: "conflict: cannot adopt \(what) \(key): \(problem) and it is not ours; left alone\(fix)")
                    a.refusesRequest = intent.requested
                    emit(a)
                    return
                }
                let why = typeDiffers ? "type changed (\(existing.type) → \(intent.source.type))" : "replica is immutable"
                emit(.init(.delete, kind, namespace: ns, name: name, rules: [rule.name], reason: how + why + "; replaced by delete + create", precondition: pre))
                emit(.init(.create, namespace: ns, name: name, rules: [rule.name], reason: how + why + "; recreated", object: want))
                manage(rule, want)
                return
            }
            var updated = object(existing, content: intent.source)
            var meta = updated.metadata
            if !owned && onConflict == .overwrite {
                meta.labels = wantMeta.labels
                meta.annotations = wantMeta.annotations
            } else {
                for k in managedLabels { meta.labels[k] = wantMeta.labels[k] }
                for k in managedAnnotations { meta.annotations[k] = wantMeta.annotations[k] }
            }
            updated.metadata = meta
            let reason = dataDiffers ? "content differs from source" : (immutableDiffers ? "immutability differs from source" : "labels or annotations differ from source")
            emit(.init(.update, namespace: ns, name: name, rules: [rule.name], reason: how + reason, object: updated, precondition: pre, previous: existing))
            manage(rule, updated)
        }

        /// `existing` with `content`'s type, data and immutability (an object in sync, or as an update leaves it).
        /// Without content, the object as stored: whole where the state has it, else without data.
        func object(_ existing: TargetObject, content: SourceObject?) -> ReplicaObject {
            if let content { return Run.object(existing.kind, existing.metadata, content: content) }
            if let whole = stored[existing.ref] { return whole }
            switch existing.kind {
            case .secret: return .secret(Secret(metadata: existing.metadata, type: existing.type, immutable: existing.immutable))
            case .configMap: return .configMap(ConfigMap(metadata: existing.metadata, immutable: existing.immutable))
            }
        }

        /// Records a replica that exists (or will) and is ours, for `replicas` and ServiceAccount patching.
        mutating func manage(_ rule: ReplicationRule, _ object: ReplicaObject) {
            let ns = object.namespace
            let name = object.name
            replicas[ReplicaRef(object.kind, ns, name)] = object
            guard object.kind == .secret else { return }
            for sa in rule.serviceAccounts {
                let k = ns + "/" + sa
                if wantedPullSecrets[k, default: []].contains(name) { continue }
                wantedPullSecrets[k, default: []].append(name)
                wantedBy[k, default: []].insert(rule.name)
            }
        }

        // MARK: prune

        /// Deletes (or reports) replicas of this policy that no rule targets any more. Only an object that is provably
        /// a replica of one of its rule's sources is deleted: its rule's kind, both labels, `dynsecret.io/rule` naming
        /// the rule, the rule's target name, `dynsecret.io/source` naming the rule's source (or an object its selector
        /// picks) and, when present, `dynsecret.io/source-uid` equal to that source's uid (or the source is gone).
        /// Anything else with our markers is reported and left alone; sources and objects in source namespaces are
        /// never touched.
        mutating func prune(desired: Set<ReplicaRef>, sources: Set<ReplicaRef>) {
            let rulesByID = Dictionary(policy.rules.map { (ruleID($0), $0) }, uniquingKeysWith: { a, _ in a })
            let sourceNamespaces = scope.isHub ? Set(policy.rules.map(\.source.namespace).filter { !$0.isEmpty }) : []
            // A declared cluster no rule targets any more keeps its replicas unless the policy says otherwise.
            let clusterDropped = !scope.isHub && !policy.rules.contains { scope.isTargeted(by: $0) }
            for ref in targets.keys.sorted() where !desired.contains(ref) && (!scope.isHub || !sources.contains(ref)) {
                let s = targets[ref]!
                // Another hub's replica (the same policy may run in several hubs) is never pruned from here.
                guard ReplicaMarkers.isOwned(labels: s.labels), let id = s.annotations[ReplicaMarkers.ruleAnnotation],
                      id.hasPrefix(policy.name + "/"), s.annotations[ReplicaMarkers.sourceClusterAnnotation] == scope.hub else { continue }
                let ns = s.namespace, name = s.name, kind = s.kind
                let ruleName = String(id.dropFirst(policy.name.count + 1))
                if sourceNamespaces.contains(ns) {
                    emit(.init(.report, kind, namespace: ns, name: name, rules: [ruleName],
                               reason: "carries replica markers of rule \(id) in a source namespace of the policy; never pruned"))
                    continue
                }
                if namespaces[ns]?.terminating == true { continue }
                let pre = ReplicationPrecondition(uid: s.uid, resourceVersion: s.resourceVersion)
                guard let rule = rulesByID[id] else {
                    emit(.init(.report, kind, namespace: ns, name: name, rules: [ruleName],
                               reason: "replica of rule \(id), which is no longer in the policy; left alone"))
                    continue
                }
                let sourceKey = s.annotations[ReplicaMarkers.sourceAnnotation] ?? ""
                let minted = sourceKey.hasPrefix(SourceObject.mintedKeyPrefix)
                let sourceNS = minted ? "" : String(sourceKey.prefix { $0 != "/" })
                let sourceName = minted ? String(sourceKey.dropFirst(SourceObject.mintedKeyPrefix.count))
                                        : sourceKey.firstIndex(of: "/").map { String(sourceKey[sourceKey.index(after: $0)...]) } ?? ""
                let source = self.sources[ReplicaRef(kind, sourceNS, sourceName)]
                var mismatch: String?
                if kind != rule.source.kind {
                    mismatch = "it is a \(kind.rawValue) and the rule replicates \(rule.source.kind.rawValue)s"
                } else if rule.source.isMinted {
                    let expected = SourceObject.mintedKeyPrefix + ReplicationRule.Source.mintedName(rule.source.credentials)
                    if sourceKey != expected { mismatch = "its source \(sourceKey.isEmpty ? "(none)" : sourceKey) is not the rule's credentials" }
                } else if let n = rule.source.name {
                    if sourceKey != rule.source.namespace + "/" + n { mismatch = "its source \(sourceKey.isEmpty ? "(none)" : sourceKey) is not the rule's source" }
                } else if let selector = rule.source.selector {
                    if sourceNS != rule.source.namespace || sourceName.isEmpty {
                        mismatch = "its source \(sourceKey) is not in the rule's source namespace"
                    } else if let source, !Run.isSelected(source.metadata, type: source.type, kind: kind, namespace: rule.source.namespace, selector: selector) {
                        mismatch = "its source \(sourceKey) is not selected by the rule"
                    }
                }
                // A requested copy has the name its requester chose.
                if mismatch == nil, !rule.targets.requested, name != (rule.targetName ?? sourceName) {
                    mismatch = "its name is not the rule's target name \(rule.targetName ?? sourceName)"
                }
                if mismatch == nil, let uid = s.annotations[ReplicaMarkers.sourceUIDAnnotation], let source, source.metadata.uid != uid {
                    mismatch = "its source-uid \(uid) is not the uid of \(sourceKey)"
                }
                if let mismatch {
                    emit(.init(.report, kind, namespace: ns, name: name, rules: [rule.name],
                               reason: "marked as a replica of rule \(id) but \(mismatch); not pruned, left alone"))
                    continue
                }
                if clusterDropped && policy.onClusterRemove == .retain {
                    emit(.init(.report, kind, namespace: ns, name: name, rules: [rule.name],
                               reason: "cluster \(scope.cluster) is no longer targeted by any rule; replica retained (onClusterRemove: retain)"))
                } else if source != nil {
                    if rule.prune {
                        emit(.init(.delete, kind, namespace: ns, name: name, rules: [rule.name], reason: "prune: no longer targeted by the rule", precondition: pre))
                    } else {
                        emit(.init(.report, kind, namespace: ns, name: name, rules: [rule.name], reason: "no longer targeted; retained (prune: false)"))
                    }
                } else if rule.source.isMinted {
                    // Credentials are never deleted, only not minted (yet, or a refresh failed): the copy stays.
                    emit(.init(.report, kind, namespace: ns, name: name, rules: [rule.name], reason: "\(sourceKey) not minted; replica retained"))
                } else if rule.onSourceDelete == .delete {
                    emit(.init(.delete, kind, namespace: ns, name: name, rules: [rule.name], reason: "source \(sourceKey) deleted (onSourceDelete: delete)", precondition: pre))
                } else {
                    emit(.init(.report, kind, namespace: ns, name: name, rules: [rule.name], reason: "source \(sourceKey) deleted; replica retained (onSourceDelete: retain)"))
                }
            }
        }

        // MARK: ServiceAccounts

        mutating func patchServiceAccounts() {
            for key in wantedPullSecrets.keys.sorted(by: utf8Less) {
                let names = wantedPullSecrets[key]!
                let slash = key.firstIndex(of: "/")!
                let ns = String(key[..<slash]), saName = String(key[key.index(after: slash)...])
                let rules = wantedBy[key]!.sorted(by: utf8Less)
                guard let sa = serviceAccounts[key] else {
                    emit(.init(.report, namespace: ns, name: saName, rules: rules, reason: "ServiceAccount \(key) not found; imagePullSecrets not patched"))
                    continue
                }
                let missing = names.filter { !sa.imagePullSecrets.contains($0) }
                guard !missing.isEmpty else { continue }
                emit(.init(.patchServiceAccount, namespace: ns, name: saName, rules: rules,
                           reason: "add \(missing.joined(separator: ", ")) to imagePullSecrets",
                           precondition: ReplicationPrecondition(uid: sa.metadata.uid, resourceVersion: sa.metadata.resourceVersion),
                           addImagePullSecrets: missing))
            }
        }

        func serviceAccountsAfter(_ actions: [ReplicationAction]) -> [ServiceAccount] {
            var out: [ServiceAccount] = []
            for key in wantedPullSecrets.keys.sorted(by: utf8Less) {
                guard var sa = serviceAccounts[key] else { continue }
                for a in actions where a.kind == .patchServiceAccount && a.namespace + "/" + a.name == key {
                    sa.imagePullSecrets = ServiceAccountPatch.apply(a.addImagePullSecrets, to: sa.imagePullSecrets)
                }
                out.append(sa)
            }
            return out
        }
    }
}

/// The ServiceAccount `imagePullSecrets` patch: append names not already present, keep every other entry and its order.
public enum ServiceAccountPatch {
    public static func apply(_ add: [String], to existing: [String]) -> [String] {
        var out = existing
        for n in add where !out.contains(n) { out.append(n) }
        return out
    }
}
