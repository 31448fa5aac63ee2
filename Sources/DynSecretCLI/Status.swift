internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretKube

/// `dynsecret status`: per rule and cluster, how the replicas stand, computed by reading the clusters and planning
/// (no controller needed; nothing is written).
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show, per rule and cluster, the namespaces targeted and the replicas in sync, out of date, in conflict or in error.",
        discussion: """
            Reads the hub (kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster) and every member cluster of the \
            policy, the way `replicate --dry-run` does, and counts per rule and cluster: TARGETED (namespaces with a \
            replica or a conflict), IN-SYNC (replicas equal to their source), OUT-OF-DATE (replicas to create or \
            update), PRUNE (replicas to delete), CONFLICTS (targets held by an object dynsecret may not write) and \
            ERRORS (1 when the cluster cannot be read). Names and counts only, never a value.

            Exit codes: 0 every replica in sync, 1 something out of date, in conflict or unreadable, 2 usage, policy \
            or configuration error.

            Examples:
              dynsecret status --policy policy.yaml
              dynsecret status --policy fleet.yaml --cluster-name hub-eu --member-kubeconfig members.kubeconfig -o json
            """
    )

    @Option(name: .long, help: ArgumentHelp("ReplicationPolicy file (YAML or JSON, - for stdin).", valueName: "file"))
    var policy: String

    @OptionGroup var connection: ClusterConnection

    @Option(name: .customLong("cluster-name"), help: ArgumentHelp("This hub's name, as the controller's --cluster-name (required when the policy declares member clusters).", valueName: "name"))
    var clusterName: String?

    @Option(name: .customLong("member-kubeconfig"), help: ArgumentHelp("Kubeconfig whose contexts the policy's context and contextPattern clusters name.", valueName: "path"))
    var memberKubeconfig: String?

    @Option(name: [.short, .long], help: "Output format.")
    var output: ListFormat = .text

    func validate() throws {
        if let clusterName, let p = KubeNames.dns1123LabelProblems(clusterName).first { throw ValidationError("--cluster-name: \(p)") }
    }

    /// One row: a rule in a cluster.
    struct Row {
        var rule: String
        var cluster: String
        var targeted = 0, inSync = 0, outOfDate = 0, prune = 0, conflicts = 0, errors = 0
        var error: String?
    }

    func run() async throws {
        let parsed = try Replicate.loadPolicy(policy)
        if parsed.isMultiCluster && clusterName == nil {
            throw CLIError("the policy declares member clusters: give --cluster-name (the controller's), so its replicas are recognised as this hub's")
        }
        let client = try connection.client(namespace: nil)
        let fleet = ReplicateFleet(policy: parsed, hub: client, scope: ReplicationScope(hub: clusterName), memberKubeconfig: memberKubeconfig,
                                   concurrency: 8, apply: false, json: output == .json, minted: await Replicate.mint(parsed).sources)
        let rows = Self.rows(parsed, try await fleet.outcomes())
        CommandIO.current.writeStdout(output == .json ? Self.json(parsed, rows) : Array(Self.text(rows).utf8))
        if rows.contains(where: { $0.outOfDate + $0.prune + $0.conflicts + $0.errors > 0 }) {
            throw ExitCode(ExitStatus.findings)
        }
    }

    /// The rows of each cluster's plan, rules in policy order within each cluster.
    static func rows(_ policy: ReplicationPolicy, _ outcomes: [ReplicateFleet.Outcome]) -> [Row] {
        var rows: [Row] = []
        for o in outcomes {
            guard let plan = o.plan else {
                rows += policy.rules.map { Row(rule: $0.name, cluster: o.cluster, errors: 1, error: o.error) }
                continue
            }
            for rule in policy.rules {
                var row = Row(rule: rule.name, cluster: o.cluster)
                let id = policy.name + "/" + rule.name
                let mine = plan.actions.filter { $0.rules.contains(rule.name) }
                let writes = Set(mine.filter { $0.kind == .create || $0.kind == .update }.map(\.ref))
                let deletes = Set(mine.filter { $0.kind == .delete }.map(\.ref)).subtracting(writes)
                let conflicts = mine.filter { $0.kind == .report && $0.reason.hasPrefix("conflict") }
                let replicas = plan.replicas.filter { $0.metadata.annotations[ReplicaMarkers.ruleAnnotation] == id }
                row.outOfDate = writes.count
                row.prune = deletes.count
                row.conflicts = Set(conflicts.map(\.ref)).count
                row.inSync = replicas.filter { !writes.contains(ReplicaRef($0.kind, $0.namespace, $0.name)) }.count
                row.targeted = Set(replicas.map(\.namespace) + conflicts.map(\.namespace)).count
                rows.append(row)
            }
        }
        return rows
    }

    static func text(_ rows: [Row]) -> String {
        var table: [[String]] = [["RULE", "CLUSTER", "TARGETED", "IN-SYNC", "OUT-OF-DATE", "PRUNE", "CONFLICTS", "ERRORS"]]
        for r in rows {
            table.append([r.rule, r.cluster, String(r.targeted), String(r.inSync), String(r.outOfDate), String(r.prune), String(r.conflicts), String(r.errors)])
        }
        var out = Table.render(table)
        for r in rows where r.error != nil && r.rule == rows.first(where: { $0.cluster == r.cluster })?.rule {
            out += "cluster \(r.cluster): \(r.error!)\n"
        }
        return out
    }

    static func json(_ policy: ReplicationPolicy, _ rows: [Row]) -> [UInt8] {
        let items: [JSONValue] = rows.map { r in
            var o: [(String, JSONValue)] = [("rule", .string(r.rule)), ("cluster", .string(r.cluster))]
            for (k, v) in [("targeted", r.targeted), ("inSync", r.inSync), ("outOfDate", r.outOfDate), ("prune", r.prune), ("conflicts", r.conflicts), ("errors", r.errors)] {
                o.append((k, .number(String(v))))
            }
            if let e = r.error { o.append(("error", .string(e))) }
            return .object(JSONObject(o))
        }
        return GoJSONWriter.indented(.object(JSONObject([("policy", .string(policy.name)), ("rules", .array(items))])))
    }
}
