/// One container image reference found in a workload.
public struct ContainerImage: Sendable, Equatable {
    /// Field path of the `image` field, such as `spec.template.spec.containers[0].image`.
    public var field: String
    public var container: String
    /// The reference as written; nil when the field is missing or not a string.
    public var image: String?
}

/// The parts of a pod spec that decide image pulls.
public struct PodSpecInfo: Sendable, Equatable {
    /// Field path of the pod spec (`spec`, `spec.template.spec`, …).
    public var field: String
    /// `serviceAccountName` (or the deprecated `serviceAccount`), `default` when unset.
    public var serviceAccountName: String
    /// `imagePullSecrets[].name`, in order.
    public var imagePullSecrets: [String]
    public var images: [ContainerImage]
}

/// Finds pod specs in Kubernetes objects: built-in workload kinds at their known paths, and any other object
/// (a custom resource, say) wherever an object holds a `containers` list of objects with `image` fields.
public enum PodSpecFinder {
    static let knownPaths: [String: [String]] = [
        "Pod": ["spec"],
        "Deployment": ["spec", "template", "spec"],
        "StatefulSet": ["spec", "template", "spec"],
        "DaemonSet": ["spec", "template", "spec"],
        "ReplicaSet": ["spec", "template", "spec"],
        "ReplicationController": ["spec", "template", "spec"],
        "Job": ["spec", "template", "spec"],
        "CronJob": ["spec", "jobTemplate", "spec", "template", "spec"],
        "PodTemplate": ["template", "spec"],
    ]

    /// Kinds that never carry pod specs; skipped without a search.
    static let inert: Set<String> = ["Secret", "ConfigMap", "ServiceAccount", "Service", "Namespace", "Role", "ClusterRole",
                                      "RoleBinding", "ClusterRoleBinding", "Ingress", "NetworkPolicy", "PersistentVolumeClaim",
                                      "CustomResourceDefinition", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Lease", "Event"]

    public static func podSpecs(in object: JSONObject) -> [PodSpecInfo] {
        let kind = object["kind"]?.stringValue ?? ""
        if inert.contains(kind) { return [] }
        if let path = knownPaths[kind] {
            var current: JSONValue = .object(object)
            for key in path {
                guard let next = current[key] else { return [] }
                current = next
            }
            guard case .object(let spec) = current else { return [] }
            return [info(spec, field: path.joined(separator: "."))]
        }
        var found: [PodSpecInfo] = []
        search(.object(object), field: "", depth: 0, into: &found)
        return found
    }

    private static func search(_ value: JSONValue, field: String, depth: Int, into found: inout [PodSpecInfo]) {
        guard depth < 24 else { return }
        switch value {
        case .object(let o):
            if looksLikePodSpec(o) {
                found.append(info(o, field: field))
                return
            }
            for m in o.members where m.key != "metadata" && m.key != "status" {
                search(m.value, field: field.isEmpty ? m.key : field + "." + m.key, depth: depth + 1, into: &found)
            }
        case .array(let a):
            for (i, item) in a.enumerated() { search(item, field: field + "[\(i)]", depth: depth + 1, into: &found) }
        default:
            break
        }
    }

    private static func looksLikePodSpec(_ o: JSONObject) -> Bool {
        guard case .array(let containers)? = o["containers"], !containers.isEmpty else { return false }
        return containers.allSatisfy { c in
            guard case .object(let co) = c else { return false }
            return co["image"] != nil || co["name"] != nil
        }
    }

    private static func info(_ spec: JSONObject, field: String) -> PodSpecInfo {
        let sa = spec["serviceAccountName"]?.stringValue ?? spec["serviceAccount"]?.stringValue ?? ""
        var pullSecrets: [String] = []
        if case .array(let refs)? = spec["imagePullSecrets"] {
            for ref in refs { pullSecrets.append(ref["name"]?.stringValue ?? "") }
        }
        var images: [ContainerImage] = []
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            guard case .array(let containers)? = spec[list] else { continue }
            for (i, c) in containers.enumerated() {
                images.append(ContainerImage(
                    field: "\(field).\(list)[\(i)].image",
                    container: c["name"]?.stringValue ?? "",
                    image: c["image"]?.stringValue
                ))
            }
        }
        return PodSpecInfo(field: field, serviceAccountName: sa.isEmpty ? "default" : sa, imagePullSecrets: pullSecrets, images: images)
    }
}
