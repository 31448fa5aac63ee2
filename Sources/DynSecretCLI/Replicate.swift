internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretCrypto
internal import DynSecretKube

/// `dynsecret replicate`: plan, render or apply the replicas a ReplicationPolicy asks for.
struct Replicate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replicate Secrets and ConfigMaps as a ReplicationPolicy says: print the plan, render manifests, or apply it once.",
        discussion: """
            The cluster state (Namespaces, Secrets, ConfigMaps, ServiceAccounts) is read from manifests with \
            --from-manifests (other kinds are ignored; namespaces that appear only in an object's metadata exist \
            without labels), or from the cluster (kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster): all \
            Namespaces, the sources, the replicas (label dynsecret.io/replica=true), the exact target names without \
            a replica, and the named ServiceAccounts; never every Secret or ConfigMap of the cluster.

            --dry-run prints the ordered plan (create, update, delete, patch-serviceaccount, report) with reasons; \
            no secret value is ever printed. --out DIR (with --from-manifests) writes every replica the policy \
            manages as DIR/NAMESPACE/secret-NAME.yaml (mode 0600, atomically) or configmap-NAME.yaml (0644), and \
            every ServiceAccount it patches as \
            DIR/NAMESPACE/serviceaccount-NAME.yaml. --once applies the plan to the cluster, --concurrency \
            namespaces at a time; a failed write does not stop the other targets. Exit codes: 0 done, 1 a write or \
            a cluster read failed, 2 usage, policy or configuration error (nothing is written for an invalid policy).

            Examples:
              dynsecret replicate --policy policies/inference-pull-secrets.yaml --from-manifests cluster/ --dry-run
              dynsecret replicate --policy policy.yaml --from-manifests cluster/ --out rendered/
              dynsecret replicate --policy policy.yaml --dry-run --context prod
              dynsecret replicate --policy policy.yaml --once --kubeconfig ~/.kube/config
            """
    )

    @Option(name: .long, help: ArgumentHelp("ReplicationPolicy file (YAML or JSON, - for stdin).", valueName: "file"))
    var policy: String

    @Flag(name: .long, help: "Print the plan; write nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Apply the plan to the cluster once and print a summary.")
    var once = false

    @Option(name: .customLong("from-manifests"), help: ArgumentHelp("Directory or file with the cluster state as manifests.", valueName: "dir"))
    var fromManifests: String?

    @Option(name: .long, help: ArgumentHelp("Write the replicas and patched ServiceAccounts as YAML under this directory.", valueName: "dir"))
    var out: String?

    @OptionGroup var connection: ClusterConnection

    @Option(name: .customLong("cluster-name"), help: ArgumentHelp("This hub's name, written to every replica as dynsecret.io/source-cluster (required when the policy declares member clusters; use the controller's).", valueName: "name"))
    var clusterName: String?

    @Option(name: .customLong("member-kubeconfig"), help: ArgumentHelp("Kubeconfig whose contexts the policy's context and contextPattern clusters name.", valueName: "path"))
    var memberKubeconfig: String?

    @Option(name: .long, help: "Namespaces written (and API requests made) at once with --once.")
    var concurrency = 8

    @Option(name: [.short, .long], help: "Plan output format for --dry-run.")
    var output: ListFormat = .text

    func validate() throws {
        if [dryRun, out != nil, once].filter({ $0 }).count != 1 { throw ValidationError("give exactly one of --dry-run, --out DIR or --once") }
        if out != nil && fromManifests == nil { throw ValidationError("--out renders manifests from --from-manifests DIR") }
        if once && fromManifests != nil { throw ValidationError("--once applies to the cluster; it does not read --from-manifests") }
        if fromManifests != nil && connection.isSet { throw ValidationError("--kubeconfig and --context are for the cluster, not --from-manifests") }
        if concurrency < 1 || concurrency > 256 { throw ValidationError("--concurrency must be between 1 and 256") }
        if let clusterName, let p = KubeNames.dns1123LabelProblems(clusterName).first { throw ValidationError("--cluster-name: \(p)") }
        if fromManifests != nil && memberKubeconfig != nil { throw ValidationError("--member-kubeconfig is for the clusters, not --from-manifests") }
    }

    func run() async throws {
        let parsed = try Self.loadPolicy(policy)
        let hubScope = ReplicationScope(hub: clusterName)
        let (minted, mintFailures) = await Self.mint(parsed)
        if let fromManifests {
            if parsed.isMultiCluster { CommandIO.current.warn("--from-manifests plans the hub (cluster local) only; member clusters are planned against the clusters") }
            var state = try ReplicateInputs.read([fromManifests])
            state.sources += minted
            let plan = ReplicationPlanner.plan(parsed, state, scope: hubScope)
            if dryRun {
                CommandIO.current.writeStdout(output == .json ? ReplicatePlanOutput.json(plan) : Array(ReplicatePlanOutput.text(plan).utf8))
                return
            }
            try ReplicateRender.write(plan, to: out!)
            return
        }
        let client = try connection.client(namespace: nil, maxConcurrentRequests: concurrency)
        if parsed.isMultiCluster {
            guard clusterName != nil else {
                throw CLIError("the policy declares member clusters: give --cluster-name (this hub's name, written to every replica as \(ReplicaMarkers.sourceClusterAnnotation); the controller's --cluster-name)")
            }
            try await ReplicateFleet(policy: parsed, hub: client, scope: hubScope, memberKubeconfig: memberKubeconfig, concurrency: concurrency, apply: once,
                                     json: output == .json, minted: minted).run()
            if mintFailures > 0 { throw CLIError("\(mintFailures) credential(s) could not be minted", exitCode: ExitStatus.findings) }
            return
        }
        let state: ReplicationState
        do {
            state = try await client.replicationState(for: parsed, scope: hubScope, minted: minted, concurrency: concurrency)
        } catch {
            throw CLIError("reading the cluster: \(error.message)", exitCode: ExitStatus.findings)
        }
        let plan = ReplicationPlanner.plan(parsed, state, scope: hubScope)
        if dryRun {
            CommandIO.current.writeStdout(output == .json ? ReplicatePlanOutput.json(plan) : Array(ReplicatePlanOutput.text(plan).utf8))
            return
        }
        let writer = KubeReplicationWriter(client: client, serviceAccounts: state.serviceAccounts)
        let progress = Progress("replicate: writes", total: plan.actions.filter(\.isWrite).count)
        let result = await KubeReplicationApplier.apply(plan, writer: writer, concurrency: concurrency) { progress.advance($0) }
        progress.finish()
        for a in plan.actions where a.kind == .report {
            CommandIO.current.warn("\(a.namespace)/\(a.name): \(a.reason)")
        }
        for f in result.failures {
            CommandIO.current.writeStderr("failed: \(f.message)\n")
        }
        CommandIO.current.writeStdout(Array(ReplicateApplySummary.text(plan, result).utf8))
        if !result.failures.isEmpty {
            throw CLIError("\(result.failures.count) write(s) failed; the other targets were written", exitCode: ExitStatus.findings)
        }
        if mintFailures > 0 { throw CLIError("\(mintFailures) credential(s) could not be minted; their rules wrote nothing", exitCode: ExitStatus.findings) }
    }

    /// Reads and decodes the `--policy` file; an invalid one is a usage error naming file, line and field.
    static func loadPolicy(_ path: String) throws(CLIError) -> ReplicationPolicy {
        let bytes = try Input.read(path, what: "--policy", kind: .policy)
        do { return try ReplicationPolicy.load(bytes, source: path) } catch { throw CLIError(error.description) }
    }

    /// Mints the credentials the policy's rules name, once: the sources of those rules, and how many failed (each
    /// said on stderr; a rule whose credentials all failed is reported as not minted).
    static func mint(_ policy: ReplicationPolicy) async -> (sources: [SourceObject], failures: Int) {
        let used = Set(policy.rules.flatMap(\.source.credentials))
        var minted: [String: MintedCredential] = [:]
        var failures = 0
        for c in policy.credentials where used.contains(c.name) {
            do throws(KubeError) {
                minted[c.name] = try await c.mint(environment: CommandIO.current.environment)
            } catch {
                failures += 1
                CommandIO.current.warn(error.message)
            }
        }
        return (policy.rules.filter(\.source.isMinted).compactMap { MintedCredential.source($0.source.credentials, minted) }, failures)
    }
}

/// `replicate` for a policy with member clusters: the hub's state is read once (its sources feed every member's
/// plan), then every cluster is read, planned and (with `--once`) written concurrently, each with its own client;
/// a cluster that cannot be reached or resolved is reported and never stops the others. Exit 1 when any cluster
/// failed (a read, a resolution, or a write).
struct ReplicateFleet {
    let policy: ReplicationPolicy
    let hub: KubeClient
    let scope: ReplicationScope
    let memberKubeconfig: String?
    let concurrency: Int
    let apply: Bool
    let json: Bool
    /// Sources minted for this run (rules with `source.credentials`).
    var minted: [SourceObject] = []

    struct Outcome: Sendable {
        var cluster: String
        var plan: ReplicationPlan?
        var result: ReplicationApplyResult?
        var error: String?
        var failed: Bool { error != nil || (result?.failures.isEmpty == false) }
    }

    func run() async throws(CLIError) {
        let outcomes = try await outcomes()
        report(outcomes)
        let failed = outcomes.filter(\.failed).map(\.cluster)
        if !failed.isEmpty {
            throw CLIError("\(failed.count) of \(outcomes.count) cluster(s) failed (\(failed.joined(separator: ", "))); the others were \(apply ? "written" : "planned")",
                           exitCode: ExitStatus.findings)
        }
    }

    /// Every cluster's plan (and, with `apply`, its writes), the hub first, then the members by name.
    func outcomes() async throws(CLIError) -> [Outcome] {
        let read: ReplicationState
        do {
            read = try await hub.replicationState(for: policy, scope: scope, minted: minted, concurrency: concurrency)
        } catch {
            throw CLIError("reading the hub (cluster local): \(error.message)", exitCode: ExitStatus.findings)
        }
        let hubState = read
        guard policy.isMultiCluster else {
            return [await Self.plan(policy, cluster: scope.cluster, scope: scope, client: hub, state: hubState, apply: apply, concurrency: concurrency)]
        }
        let sources = KubeClient.replicationSources(policy, in: hubState)
        let members = await hub.memberClusters(of: policy, memberKubeconfig: memberKubeconfig, environment: CommandIO.current.environment)
        let hubClient = hub, policy = self.policy, scope = self.scope, concurrency = self.concurrency, apply = self.apply
        var outcomes: [Outcome] = []
        await withTaskGroup(of: Outcome.self) { group in
            group.addTask { await Self.plan(policy, cluster: scope.cluster, scope: scope, client: hubClient, state: hubState, apply: apply, concurrency: concurrency) }
            for m in members {
                let memberScope = m.scope(hub: scope.hub)
                group.addTask {
                    let client: KubeClient
                    switch m.config {
                    case .failure(let e): return Outcome(cluster: m.name, error: "cluster configuration: \(e.message)")
                    case .success(let config): client = KubeClient(config: config, maxConcurrentRequests: concurrency)
                    }
                    let state: ReplicationState
                    do throws(KubeError) {
                        state = try await client.replicationState(for: policy, scope: memberScope, sources: sources, onlyNamespaces: m.namespaces,
                                                                  concurrency: concurrency)
                    } catch {
                        return Outcome(cluster: m.name, error: "reading the cluster: \(error.message)")
                    }
                    return await Self.plan(policy, cluster: m.name, scope: memberScope, client: client, state: state, apply: apply, concurrency: concurrency)
                }
            }
            for await o in group { outcomes.append(o) }
        }
        outcomes.sort { a, b in
            if (a.cluster == ReplicationScope.localCluster) != (b.cluster == ReplicationScope.localCluster) { return a.cluster == ReplicationScope.localCluster }
            return utf8Less(a.cluster, b.cluster)
        }
        return outcomes
    }

    private static func plan(_ policy: ReplicationPolicy, cluster: String, scope: ReplicationScope, client: KubeClient, state: ReplicationState,
                             apply: Bool, concurrency: Int) async -> Outcome {
        let plan = ReplicationPlanner.plan(policy, state, scope: scope)
        guard apply else { return Outcome(cluster: cluster, plan: plan) }
        let writer = KubeReplicationWriter(client: client, serviceAccounts: state.serviceAccounts)
        let result = await KubeReplicationApplier.apply(plan, writer: writer, concurrency: concurrency)
        return Outcome(cluster: cluster, plan: plan, result: result)
    }

    private func report(_ outcomes: [Outcome]) {
        let io = CommandIO.current
        if !apply && json {
            let clusters: [JSONValue] = outcomes.map { o in
                guard let plan = o.plan else { return .object(JSONObject([("cluster", .string(o.cluster)), ("error", .string(o.error ?? ""))])) }
                guard case .object(var body) = (try? JSONParser.parse(ReplicatePlanOutput.json(plan))) ?? .null else { return .null }
                body["policy"] = nil
                return .object(JSONObject([("cluster", .string(o.cluster))] + body.members.map { ($0.key, $0.value) }))
            }
            io.writeStdout(GoJSONWriter.indented(.object(JSONObject([("policy", .string(policy.name)), ("clusters", .array(clusters))]))))
            return
        }
        var text = ""
        for o in outcomes {
            guard let plan = o.plan else {
                text += "cluster \(o.cluster): error: \(o.error ?? "")\n"
                continue
            }
            if let result = o.result {
                for a in plan.actions where a.kind == .report { io.warn("cluster \(o.cluster): \(a.namespace)/\(a.name): \(a.reason)") }
                for f in result.failures { io.writeStderr("failed: cluster \(o.cluster): \(f.message)\n") }
                text += "cluster \(o.cluster): " + ReplicateApplySummary.text(plan, result)
            } else {
                text += "cluster \(o.cluster): " + ReplicatePlanOutput.text(plan)
            }
        }
        io.writeStdout(Array(text.utf8))
    }
}

/// The one-line summary of `--once`: writes done by kind, reports, failures.
enum ReplicateApplySummary {
    static func text(_ plan: ReplicationPlan, _ result: ReplicationApplyResult) -> String {
        func done(_ kind: ReplicationAction.Kind) -> Int {
            plan.count(kind) - result.failures.filter { $0.action.kind == kind }.count - (kind == .create ? result.skipped : 0)
        }
        return "policy \(plan.policy): \(done(.create)) created, \(done(.update)) updated, \(done(.delete)) deleted, "
            + "\(done(.patchServiceAccount)) ServiceAccount(s) patched, \(plan.count(.report)) reported, "
            + "\(result.failures.count) failed, \(result.skipped) skipped\n"
    }
}

/// Reads Namespaces, Secrets, ConfigMaps and ServiceAccounts from manifests; objects of other kinds go to `other`.
enum ReplicateInputs {
    static func read(_ paths: [String], flag: String = "--from-manifests",
                     other: (JSONValue, ManifestDocument) -> Void = { _, _ in }) throws(CLIError) -> ReplicationState {
        var state = ReplicationState()
        var seen: Set<String> = []
        var firstError: ManifestError?
        try ManifestInputs.forEachDocument(paths, flag: flag) { result in
            guard firstError == nil else { return }
            switch result {
            case .failure(let e): firstError = e
            case .success(let doc):
                for (value, prefix) in doc.objects {
                    do throws(ManifestError) {
                        if try !add(value, to: &state) { other(value, doc) }
                    } catch {
                        var e = error.located(source: doc.source, document: doc.index, line: doc.line)
                        e.field = e.field.map { prefix + $0 }
                        firstError = e
                        return
                    }
                }
            }
        }
        if let firstError { throw CLIError(firstError.description) }
        for ns in state.namespaces { seen.insert(ns.name) }
        let implicit = state.secrets.map { $0.metadata.namespace ?? "default" } + state.configMaps.map { $0.metadata.namespace ?? "default" }
            + state.serviceAccounts.map { $0.metadata.namespace ?? "default" }
        for ns in implicit where seen.insert(ns).inserted { state.namespaces.append(ReplicationNamespace(name: ns, labels: ["kubernetes.io/metadata.name": ns])) }
        return state
    }

    /// Adds `value` when it is of a kind the planner reads; false for any other kind.
    private static func add(_ value: JSONValue, to state: inout ReplicationState) throws(ManifestError) -> Bool {
        switch value["kind"]?.stringValue {
        case "Secret":
            var s = try Secret.decode(value).secret
            if s.metadata.namespace == nil { s.metadata.namespace = "default" }
            state.secrets.append(s)
        case "ConfigMap":
            var c = try ConfigMap.decode(value).configMap
            if c.metadata.namespace == nil { c.metadata.namespace = "default" }
            state.configMaps.append(c)
        case "ServiceAccount":
            var sa = try ServiceAccount.decode(value).serviceAccount
            if sa.metadata.namespace == nil { sa.metadata.namespace = "default" }
            state.serviceAccounts.append(sa)
        case "Namespace":
            guard let name = value["metadata"]?["name"]?.stringValue else { throw ManifestError("required value", field: "metadata.name") }
            // The API server always sets kubernetes.io/metadata.name on a Namespace; selectors may rely on it.
            var labels: [String: String] = ["kubernetes.io/metadata.name": name]
            if let o = value["metadata"]?["labels"]?.objectValue {
                for m in o.members {
                    guard let v = m.value.stringValue else { throw ManifestError("expected string, got \(m.value.typeName)", field: "metadata.labels[\(m.key)]") }
                    labels[m.key] = v
                }
            }
            let terminating = value["status"]?["phase"]?.stringValue == "Terminating" || value["metadata"]?["deletionTimestamp"]?.stringValue != nil
            state.namespaces.append(ReplicationNamespace(name: name, labels: labels, terminating: terminating))
        default:
            return false
        }
        return true
    }
}

/// The plan as text or JSON. Names, types and reasons only: never a secret value or a hash of one.
enum ReplicatePlanOutput {
    static func summary(_ plan: ReplicationPlan) -> String {
        ReplicationAction.Kind.allCases.map { "\(plan.count($0)) \($0.rawValue)" }.joined(separator: ", ")
    }

    static func text(_ plan: ReplicationPlan) -> String {
        var rows: [[String]] = [["ACTION", "KIND", "OBJECT", "RULE", "REASON"]]
        for a in plan.actions {
            let kind = a.kind == .patchServiceAccount ? "ServiceAccount" : a.objectKind.rawValue
            rows.append([a.kind.rawValue, kind, "\(a.namespace)/\(a.name)", a.rules.joined(separator: ","), a.reason])
        }
        let body = plan.actions.isEmpty ? "" : Table.render(rows)
        return "policy \(plan.policy): \(summary(plan))\n" + body
    }

    static func json(_ plan: ReplicationPlan) -> [UInt8] {
        let counts = JSONObject(ReplicationAction.Kind.allCases.map { ($0.rawValue, JSONValue.number(String(plan.count($0)))) })
        let actions: [JSONValue] = plan.actions.map { a in
            var o: [(String, JSONValue)] = [
                ("action", .string(a.kind.rawValue)), ("kind", .string(a.kind == .patchServiceAccount ? "ServiceAccount" : a.objectKind.rawValue)),
                ("namespace", .string(a.namespace)), ("name", .string(a.name)),
                ("rules", .array(a.rules.map(JSONValue.string))), ("reason", .string(a.reason)),
            ]
            if let s = a.secret {
                // No content hash: an unsalted hash of low-entropy data can be brute-forced from CI logs.
                o.append(("type", .string(s.effectiveType)))
            }
            if let p = a.precondition {
                var po: [(String, JSONValue)] = []
                if let uid = p.uid { po.append(("uid", .string(uid))) }
                if let rv = p.resourceVersion { po.append(("resourceVersion", .string(rv))) }
                o.append(("precondition", .object(JSONObject(po))))
            }
            if !a.addImagePullSecrets.isEmpty { o.append(("addImagePullSecrets", .array(a.addImagePullSecrets.map(JSONValue.string)))) }
            return .object(JSONObject(o))
        }
        let root = JSONObject([("policy", .string(plan.policy)), ("summary", .object(counts)), ("actions", .array(actions))])
        return GoJSONWriter.indented(.object(root))
    }
}

/// `--out DIR`: the replicas and patched ServiceAccounts as manifests, without server-set fields.
enum ReplicateRender {
    static func write(_ plan: ReplicationPlan, to dir: String) throws(CLIError) {
        // Render everything first, so a rendering problem writes nothing.
        var files: [(path: String, bytes: [UInt8], mode: UInt32)] = []
        for var o in plan.replicas {
            o.metadata = clean(o.metadata)
            // Secrets owner-only; ConfigMaps hold no secrets.
            files.append(("\(dir)/\(o.namespace)/\(o.kind.rawValue.lowercased())-\(o.name).yaml", Array(o.yamlText.utf8), o.kind == .secret ? 0o600 : 0o644))
        }
        for var sa in plan.serviceAccounts {
            sa.metadata = clean(sa.metadata)
            files.append(("\(dir)/\(sa.metadata.namespace ?? "default")/serviceaccount-\(sa.metadata.name ?? "").yaml", Array(YAMLWriter.document(sa.json).utf8), 0o644))
        }
        do {
            for f in files {
                try AtomicFile.makeDirectory(String(f.path[..<f.path.lastIndex(of: "/")!]))
                // A run killed mid-write left its temporary copy (replica data) behind: gone before this write.
                AtomicFile.removeLeftovers(of: f.path)
                try AtomicFile.write(f.bytes, to: f.path, mode: f.mode)
            }
        } catch {
            throw CLIError("--out \(error.description)")
        }
        for a in plan.actions where a.kind == .report || a.kind == .delete {
            let note = a.kind == .delete ? "remove \(a.namespace)/\(a.name): \(a.reason)" : "\(a.namespace)/\(a.name): \(a.reason)"
            CommandIO.current.warn(note)
        }
        let secrets = plan.replicas.filter { $0.kind == .secret }.count
        let configMaps = plan.replicas.count - secrets
        CommandIO.current.writeStdout(Array("wrote \(secrets) Secret(s)\(configMaps > 0 ? ", \(configMaps) ConfigMap(s)" : "") and \(plan.serviceAccounts.count) ServiceAccount(s) under \(dir)\n".utf8))
    }

    /// Metadata a GitOps manifest may carry: no uid, resourceVersion, timestamps or managed fields.
    static func clean(_ m: ObjectMeta) -> ObjectMeta {
        var out = ObjectMeta(name: m.name, namespace: m.namespace, labels: m.labels, annotations: m.annotations)
        out.annotations[ReplicaMarkers.lastApplied] = nil
        return out
    }
}
