internal import ArgumentParser
internal import DynSecretCore
internal import DynSecretKube

/// Options for commands that talk to a cluster: kubeconfig (or in-cluster configuration) and context.
struct ClusterConnection: ParsableArguments {
    @Option(name: .customLong("kubeconfig"), help: ArgumentHelp("Path to the kubeconfig file (default: KUBECONFIG, ~/.kube/config, in-cluster).", valueName: "path"))
    var kubeconfig: String?

    @Option(name: .customLong("context"), help: ArgumentHelp("The kubeconfig context to use.", valueName: "name"))
    var context: String?

    /// Whether either option was given.
    var isSet: Bool { kubeconfig != nil || context != nil }

    /// A client for the configured cluster; `namespace` overrides the context's namespace when given.
    func client(namespace: String?, maxConcurrentRequests: Int = 8) throws(CLIError) -> KubeClient {
        do {
            let config = try KubeConfigLoader.load(kubeconfigPath: kubeconfig, context: context, namespace: namespace,
                                                   environment: CommandIO.current.environment)
            return KubeClient(config: config, maxConcurrentRequests: maxConcurrentRequests)
        } catch {
            throw CLIError("cluster configuration: \(error.message)")
        }
    }
}

extension KubeError {
    /// This error as a CLI error (exit status 2: the cluster could not be read or written).
    func cli(_ what: String) -> CLIError { CLIError("\(what): \(message)") }
}

/// Reads what the CLI's cluster sources need, without listing more Secrets than it must.
enum ClusterReader {
    /// Pull secrets (listed with a field selector on `type`) as manifest documents, in namespace/name order.
    static func pullSecretDocuments(_ client: KubeClient, namespace: String?) async throws(CLIError) -> [ManifestDocument] {
        let secrets: [Secret]
        let progress = Progress("reading pull secrets", total: 0)
        defer { progress.finish() }
        do {
            secrets = try await client.pullSecrets(namespace: namespace) { progress.advance() }
        } catch {
            throw error.cli("listing pull secrets")
        }
        return documents(secrets.map(\.json), kind: "secret")
    }

    /// Every Secret and ServiceAccount (for `validate --cluster`), as manifest documents.
    static func secretsAndServiceAccounts(_ client: KubeClient, namespace: String?) async throws(CLIError) -> [ManifestDocument] {
        do {
            let secrets = try await client.list(Secret.self, namespace: namespace).items.map(\.json)
            let accounts = try await client.list(ServiceAccount.self, namespace: namespace).items.map(\.json)
            return documents(secrets, kind: "secret") + documents(accounts, kind: "serviceaccount")
        } catch {
            throw error.cli("reading the cluster")
        }
    }

    /// The ServiceAccount, or nil when it does not exist.
    static func serviceAccount(_ client: KubeClient, namespace: String, name: String) async throws(CLIError) -> ServiceAccount? {
        do {
            return try await client.get(ServiceAccount.self, namespace: namespace, name: name)
        } catch where error.status?.code == 404 {
            return nil
        } catch {
            throw error.cli("reading ServiceAccount \(namespace)/\(name)")
        }
    }

    /// Objects read from the cluster, each as its own document whose source names it (`cluster:secret/NS/NAME`).
    private static func documents(_ objects: [JSONValue], kind: String) -> [ManifestDocument] {
        objects.map { o in
            let ns = o["metadata"]?["namespace"]?.stringValue ?? ""
            let name = o["metadata"]?["name"]?.stringValue ?? ""
            return ManifestDocument(source: "cluster:\(kind)/\(ns)/\(name)", index: 1, line: 1, value: o)
        }
    }
}
