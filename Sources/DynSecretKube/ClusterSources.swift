public import DynSecretCore

/// What an apply did.
public enum ApplyResult: Sendable, Equatable {
    case created
    case updated
    case unchanged

    /// The word kubectl prints for it: `created`, `configured`, `unchanged`.
    public var verb: String {
        switch self {
        case .created: "created"
        case .updated: "configured"
        case .unchanged: "unchanged"
        }
    }
}

/// Cluster-side building blocks for the CLI's cluster sources (`create-registry --apply`,
/// `validate --cluster`, `index --cluster`, `which --cluster`).
extension KubeClient {
    /// The pull secrets (`kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg`) in `namespace`, or in
    /// every namespace when nil, listed server-side with a field selector on `type`, in namespace/name order.
    /// `onSecret` is called as each one arrives (for progress).
    public func pullSecrets(namespace: String?, onSecret: (@Sendable () -> Void)? = nil) async throws(KubeError) -> [Secret] {
        var all: [Secret] = []
        for type in [SecretType.dockerConfigJSON, SecretType.dockercfg] {
            var items: [JSONValue] = []
            _ = try await listEach(.secrets, namespace: namespace, options: ListOptions(fieldSelector: "type=\(type)")) {
                items.append($0)
                onSecret?()
            }
            for item in items { all.append(try Secret(kubeJSON: item)) }
        }
        return all.sorted { ($0.metadata.namespace ?? "", $0.metadata.name ?? "") < ($1.metadata.namespace ?? "", $1.metadata.name ?? "") }
    }

    /// Creates `secret`, or replaces the data, type-preserving fields and labels/annotations of the existing one
    /// with the same name (update with its `resourceVersion`, retried on a 409 Conflict a few times).
    /// An existing Secret whose content already matches is left alone. Server-set identity fields of `secret`
    /// (`uid`, `resourceVersion`, `creationTimestamp`, `generation`, as in a `kubectl get -o yaml` file or a restored
    /// record) are not sent: they belong to the object in the cluster, if any.
    public func apply(_ secret: Secret) async throws(KubeError) -> ApplyResult {
        guard let name = secret.metadata.name else { throw KubeError(message: "apply: the Secret has no metadata.name") }
        let namespace = secret.metadata.namespace ?? config.namespace
        var desired = secret
        desired.metadata.namespace = namespace
        desired.metadata.uid = nil
        desired.metadata.resourceVersion = nil
        desired.metadata.creationTimestamp = nil
        desired.metadata.generation = nil
        do {
            _ = try await create(desired)
            return .created
        } catch where error.reason == "AlreadyExists" {
            // fall through to update
        }
        var attempts = 0
        while true {
            attempts += 1
            let current = try await get(Secret.self, namespace: namespace, name: name)
            var next = current
            next.type = desired.type
            next.data = desired.mergedData
            next.stringData = [:]
            for (k, v) in desired.metadata.labels { next.metadata.labels[k] = v }
            for (k, v) in desired.metadata.annotations { next.metadata.annotations[k] = v }
            if next == current { return .unchanged }
            do {
                _ = try await update(next)
                return .updated
            } catch where error.reason == "Conflict" && attempts < 5 {
                continue
            }
        }
    }
}
