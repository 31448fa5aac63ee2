public import DynSecretCore
public import DynSecretKube

/// The cluster state admission reads: informers on the pull-secret Secrets (one per pull-secret type, field selector
/// on `type`, so no other Secret is ever listed), ServiceAccounts and Namespaces (labels only).
///
/// Lookups read the informers' caches under their locks and never wait for the API server. `run()` keeps the caches
/// current until it is cancelled.
public final class AdmissionCache: AdmissionState {
    private let dockerConfigJSON: Informer<AdmissionPullSecret>
    private let dockercfg: Informer<AdmissionPullSecret>
    private let serviceAccounts: Informer<ServiceAccount>
    private let namespaces: Informer<[String: String]>

    public init(client: KubeClient, clock: any Clock<Duration> = ContinuousClock()) {
        func secrets(_ type: String) -> Informer<AdmissionPullSecret> {
            Informer(client: client, resource: .secrets, options: ListOptions(fieldSelector: "type=\(type)"), clock: clock) { AdmissionPullSecret($0) }
        }
        dockerConfigJSON = secrets(SecretType.dockerConfigJSON)
        dockercfg = secrets(SecretType.dockercfg)
        serviceAccounts = Informer(client: client, resource: .serviceAccounts, clock: clock) { o in
            guard case .object(var object) = o else { return nil }
            object["kind"] = .string("ServiceAccount")
            object["apiVersion"] = .string("v1")
            return try? ServiceAccount.decode(.object(object)).serviceAccount
        }
        namespaces = Informer(client: client, resource: .namespaces, clock: clock) { o in
            var labels: [String: String] = [:]
            for m in o["metadata"]?["labels"]?.objectValue?.members ?? [] { labels[m.key] = m.value.stringValue ?? "" }
            return labels
        }
    }

    /// Lists and watches until cancelled.
    public func run() async {
        let dockerConfigJSON = self.dockerConfigJSON, dockercfg = self.dockercfg
        let serviceAccounts = self.serviceAccounts, namespaces = self.namespaces
        await withDiscardingTaskGroup { group in
            group.addTask { for await _ in dockerConfigJSON.events() {} }
            group.addTask { for await _ in dockercfg.events() {} }
            group.addTask { for await _ in serviceAccounts.events() {} }
            group.addTask { for await _ in namespaces.events() {} }
        }
    }

    public var hasSynced: Bool {
        dockerConfigJSON.hasSynced && dockercfg.hasSynced && serviceAccounts.hasSynced && namespaces.hasSynced
    }

    /// Cached pull secrets and ServiceAccounts (for logs and tests).
    public var counts: (pullSecrets: Int, serviceAccounts: Int) { (dockerConfigJSON.count + dockercfg.count, serviceAccounts.count) }

    public func pullSecret(namespace: String, name: String) -> AdmissionPullSecret? {
        dockerConfigJSON.object(namespace: namespace, name: name)?.object ?? dockercfg.object(namespace: namespace, name: name)?.object
    }

    public func pullSecrets(namespace: String) -> [String: AdmissionPullSecret] {
        dockercfg.objects(in: namespace).merging(dockerConfigJSON.objects(in: namespace)) { _, json in json }
    }

    public func serviceAccount(namespace: String, name: String) -> ServiceAccount? {
        serviceAccounts.object(namespace: namespace, name: name)?.object
    }

    public func namespaceLabels(_ namespace: String) -> [String: String]? {
        namespaces.object(namespace: "", name: namespace)?.object
    }
}
