internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretCrypto
internal import DynSecretKube

/// `--from` values.
enum MigrateFrom: String, ExpressibleByArgument, CaseIterable {
    case reflector, replicator, kubed, kyverno
    var tool: MigrationTool { MigrationTool(rawValue: rawValue)! }
}

/// `dynsecret migrate`: translate another replicator's configuration into a policy and adopt its copies in place.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Translate reflector, replicator, kubed or Kyverno replication into a ReplicationPolicy, and adopt their copies in place.",
        discussion: """
            Reads the cluster (kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster: all Namespaces, Secrets and \
            ConfigMaps, since annotations cannot be selected server-side), or, without --apply, the Namespaces, \
            Secrets and ConfigMaps in the -f manifests when there are any. Kyverno ClusterPolicy/Policy objects are \
            always read from -f.

            Writes a ReplicationPolicy reproducing what the tool does today to --policy-out (0644, atomically), \
            with comments where a value could not be carried over as written (a regex namespace list becomes the \
            namespaces it matches now). Then prints the adoption plan: each existing copy of the tool becomes a \
            dynsecret replica by one update (markers added, the tool's bookkeeping keys removed, data as the source \
            has it, guarded by uid and resourceVersion); missing copies are created; nothing is deleted or \
            recreated, so no pod ever loses its pull secret. --apply applies it.

            An annotation that cannot be read (unparsable regex or selector, malformed NAMESPACE/NAME) stops the \
            migration: nothing is written, exit 1. Order of the switch: docs/migration.md.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The tool replicating today: reflector, replicator, kubed or kyverno.", valueName: "tool"))
    var from: MigrateFrom

    @Option(name: .customLong("policy-out"), help: ArgumentHelp("Write the ReplicationPolicy here.", valueName: "file"))
    var policyOut: String

    @Option(name: .customLong("policy-name"), help: ArgumentHelp("metadata.name of the policy (default migrated-TOOL).", valueName: "name"))
    var policyName: String?

    @Option(name: .short, help: ArgumentHelp("Manifests (files, directories, - for stdin): the state for --dry-run, and Kyverno policies.", valueName: "path"))
    var file: [String] = []

    @Flag(name: .long, help: "Print the adoption plan; write nothing to the cluster (the default).")
    var dryRun = false

    @Flag(name: .long, help: "Apply the adoption plan to the cluster.")
    var apply = false

    @OptionGroup var connection: ClusterConnection

    @Option(name: [.short, .long], help: "Plan output format.")
    var output: ListFormat = .text

    func validate() throws {
        if dryRun && apply { throw ValidationError("give --dry-run or --apply, not both") }
        if let policyName, !KubeNames.dns1123SubdomainProblems(policyName).isEmpty {
            throw ValidationError("--policy-name \(policyName): \(KubeNames.dns1123SubdomainProblems(policyName).joined(separator: "; "))")
        }
        if from == .kyverno && file.isEmpty { throw ValidationError("--from kyverno reads the ClusterPolicy/Policy manifests: give them with -f") }
    }

    func run() async throws {
        // --apply works on what it reads from the cluster; without it, manifests holding objects are the whole state.
        var input = try Self.readManifests(file)
        let offline = !apply && !(input.objects.isEmpty && input.namespaces.isEmpty)
        var client: KubeClient?
        if !offline {
            let c = try connection.client(namespace: nil, maxConcurrentRequests: 8)
            client = c
            do {
                let cluster = try await Self.readCluster(c)
                input.namespaces = cluster.namespaces
                input.objects = cluster.objects
            } catch {
                throw CLIError("reading the cluster: \(error.message)")
            }
        }
        let migration = Migration.translate(from.tool, input, policyName: policyName ?? "migrated-\(from.rawValue)")
        if !migration.errors.isEmpty {
            for e in migration.errors { CommandIO.current.writeStderr("error: \(e)\n") }
            throw CLIError("\(migration.errors.count) problem(s) in the \(from.rawValue) configuration; nothing written", exitCode: ExitStatus.findings)
        }
        for c in migration.comments { CommandIO.current.warn(c) }
        guard let policy = migration.policy, let plan = migration.adoptionPlan(input.state) else {
            throw CLIError("no \(from.rawValue) replication found; nothing written", exitCode: ExitStatus.findings)
        }
        try Self.writePolicy(policy, comments: migration.comments, tool: from.tool, to: policyOut)
        CommandIO.current.writeStderr("wrote policy \(policy.name) (\(policy.rules.count) rule(s)) to \(policyOut)\n")
        guard apply, let client else {
            CommandIO.current.writeStdout(output == .json ? ReplicatePlanOutput.json(plan) : Array(ReplicatePlanOutput.text(plan).utf8))
            return
        }
        let result = await KubeReplicationApplier.apply(plan, writer: KubeReplicationWriter(client: client), concurrency: 8)
        for a in plan.actions where a.kind == .report { CommandIO.current.warn("\(a.namespace)/\(a.name): \(a.reason)") }
        for f in result.failures { CommandIO.current.writeStderr("failed: \(f.message)\n") }
        let adopted = plan.actions.filter { $0.kind == .update }.count - result.failures.filter { $0.action.kind == .update }.count
        let created = plan.actions.filter { $0.kind == .create }.count - result.failures.filter { $0.action.kind == .create }.count
        CommandIO.current.writeStdout(Array("migrate \(from.rawValue): \(adopted) adopted in place, \(created) created, \(plan.count(.report)) reported, \(result.failures.count) failed\n".utf8))
        if !result.failures.isEmpty {
            throw CLIError("\(result.failures.count) write(s) failed; run migrate --apply again (adoption is idempotent)", exitCode: ExitStatus.findings)
        }
    }

    /// Namespaces, Secrets and ConfigMaps, and Kyverno policies, from manifests (read as `replicate --from-manifests`
    /// reads them).
    static func readManifests(_ paths: [String]) throws(CLIError) -> MigrationInput {
        guard !paths.isEmpty else { return MigrationInput(namespaces: [], objects: []) }
        var kyverno: [(object: JSONValue, origin: String)] = []
        let state = try ReplicateInputs.read(paths, flag: "-f") { value, doc in
            let kind = value["kind"]?.stringValue
            if kind == "ClusterPolicy" || kind == "Policy", value["apiVersion"]?.stringValue?.hasPrefix("kyverno.io/") == true {
                kyverno.append((value, "\(doc.source)#\(doc.index)"))
            }
        }
        return MigrationInput(namespaces: state.namespaces, objects: state.objects, kyvernoPolicies: kyverno)
    }

    /// Every Namespace, Secret and ConfigMap of the cluster.
    static func readCluster(_ c: KubeClient) async throws(KubeError) -> (namespaces: [ReplicationNamespace], objects: [ReplicaObject]) {
        let namespaces = try await c.listAll(.namespaces).items.compactMap { ReplicationNamespace(apiObject: $0) }
        return (namespaces, try await c.replicaObjects(.secret, namespace: nil) + c.replicaObjects(.configMap, namespace: nil))
    }

    /// The policy as YAML with a comment header, checked by reading it back before it is written.
    static func writePolicy(_ policy: ReplicationPolicy, comments: [String], tool: MigrationTool, to path: String) throws(CLIError) {
        var text = "# Generated by `dynsecret migrate --from \(tool.rawValue)`. Review before use; docs/migration.md gives the order of the switch.\n"
        for c in comments { text += "# - " + c.split(separator: "\n").joined(separator: " ") + "\n" }
        text += YAMLWriter.document(policy.json)
        let readBack: ReplicationPolicy
        do {
            readBack = try ReplicationPolicy.load(Array(text.utf8), source: path)
        } catch {
            throw CLIError("internal error: the generated policy does not load (\(error.description)); nothing written")
        }
        guard readBack == policy else { throw CLIError("internal error: the generated policy does not read back equal; nothing written") }
        do {
            AtomicFile.removeLeftovers(of: path)
            try AtomicFile.write(Array(text.utf8), to: path, mode: 0o644)
        } catch {
            throw CLIError("--policy-out \(error.description)")
        }
    }
}
