internal import DynSecretCore
internal import Foundation

/// A kind the emulator serves, with its API-server defaulting and validation.
struct Kind: Sendable {
    var group: String
    var version: String
    var plural: String
    var singular: String
    var kind: String
    var namespaced: Bool
    var shortNames: [String]
    /// Top-level fields of the kind (strict field validation rejects others).
    var fields: Set<String>
    /// Field selectors the API server supports besides `metadata.name` and `metadata.namespace`.
    var extraFieldLabels: [String: @Sendable (JSONObject) -> String]

    var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    static let secret = Kind(group: "", version: "v1", plural: "secrets", singular: "secret", kind: "Secret", namespaced: true, shortNames: [],
                             fields: ["apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"],
                             extraFieldLabels: ["type": { $0["type"]?.stringValue ?? "" }])
    static let configMap = Kind(group: "", version: "v1", plural: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true, shortNames: ["cm"],
                                fields: ["apiVersion", "kind", "metadata", "data", "binaryData", "immutable"], extraFieldLabels: [:])
    static let namespace = Kind(group: "", version: "v1", plural: "namespaces", singular: "namespace", kind: "Namespace", namespaced: false, shortNames: ["ns"],
                                fields: ["apiVersion", "kind", "metadata", "spec", "status"],
                                extraFieldLabels: ["status.phase": { $0["status"]?["phase"]?.stringValue ?? "" }])
    static let serviceAccount = Kind(group: "", version: "v1", plural: "serviceaccounts", singular: "serviceaccount", kind: "ServiceAccount", namespaced: true, shortNames: ["sa"],
                                     fields: ["apiVersion", "kind", "metadata", "secrets", "imagePullSecrets", "automountServiceAccountToken"],
                                     extraFieldLabels: [:])
    static let event = Kind(group: "", version: "v1", plural: "events", singular: "event", kind: "Event", namespaced: true, shortNames: ["ev"],
                            fields: ["apiVersion", "kind", "metadata", "involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp",
                                     "count", "type", "eventTime", "series", "action", "related", "reportingComponent", "reportingInstance"],
                            extraFieldLabels: [
                                "involvedObject.kind": { $0["involvedObject"]?["kind"]?.stringValue ?? "" },
                                "involvedObject.name": { $0["involvedObject"]?["name"]?.stringValue ?? "" },
                                "involvedObject.namespace": { $0["involvedObject"]?["namespace"]?.stringValue ?? "" },
                                "reason": { $0["reason"]?.stringValue ?? "" },
                                "type": { $0["type"]?.stringValue ?? "" },
                            ])
    static let lease = Kind(group: "coordination.k8s.io", version: "v1", plural: "leases", singular: "lease", kind: "Lease", namespaced: true, shortNames: [],
                            fields: ["apiVersion", "kind", "metadata", "spec"], extraFieldLabels: [:])

    /// Workload kinds, stored as given (no controllers run: a Deployment makes no ReplicaSet); they exist so that
    /// admission webhooks see what `kubectl apply` sends.
    static func workload(_ group: String, _ plural: String, _ kind: String, _ shortNames: [String]) -> Kind {
        Kind(group: group, version: "v1", plural: plural, singular: kind.lowercased(), kind: kind, namespaced: true, shortNames: shortNames,
             fields: ["apiVersion", "kind", "metadata", "spec", "status"], extraFieldLabels: [:])
    }
    static let pod = workload("", "pods", "Pod", ["po"])
    static let replicationController = workload("", "replicationcontrollers", "ReplicationController", ["rc"])
    static let deployment = workload("apps", "deployments", "Deployment", ["deploy"])
    static let statefulSet = workload("apps", "statefulsets", "StatefulSet", ["sts"])
    static let daemonSet = workload("apps", "daemonsets", "DaemonSet", ["ds"])
    static let replicaSet = workload("apps", "replicasets", "ReplicaSet", ["rs"])
    static let job = workload("batch", "jobs", "Job", [])
    static let cronJob = workload("batch", "cronjobs", "CronJob", ["cj"])
    static let validatingWebhookConfiguration = Kind(
        group: "admissionregistration.k8s.io", version: "v1", plural: "validatingwebhookconfigurations", singular: "validatingwebhookconfiguration",
        kind: "ValidatingWebhookConfiguration", namespaced: false, shortNames: [], fields: ["apiVersion", "kind", "metadata", "webhooks"], extraFieldLabels: [:])

    static let all: [Kind] = [.namespace, .secret, .configMap, .serviceAccount, .event, .lease, .pod, .replicationController, .deployment, .statefulSet,
                              .daemonSet, .replicaSet, .job, .cronJob, .validatingWebhookConfiguration]

    /// API groups served besides the core group, in discovery order.
    static let groups = ["coordination.k8s.io", "apps", "batch", "admissionregistration.k8s.io"]

    static let objectMetaFields: Set<String> = [
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
        "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers", "managedFields",
    ]

    /// Unknown fields (paths) at the top level and in `metadata`.
    func unknownFields(_ o: JSONObject) -> [String] {
        var out = o.keys.filter { !fields.contains($0) }
        if let m = o["metadata"]?.objectValue {
            out += m.keys.filter { !Kind.objectMetaFields.contains($0) }.map { "metadata.\($0)" }
        }
        return out
    }

    /// API-server defaulting on write.
    func applyDefaults(_ o: inout JSONObject) {
        switch kind {
        case "Secret":
            if (o["type"]?.stringValue ?? "").isEmpty { o["type"] = .string("Opaque") }
            // stringData is write-only: merged into data, overriding equal keys.
            if let sd = o["stringData"]?.objectValue {
                var data = o["data"]?.objectValue ?? JSONObject()
                for m in sd.members { if let s = m.value.stringValue { data[m.key] = .string(Base64.encode(Array(s.utf8))) } }
                o["data"] = .object(data)
                o["stringData"] = nil
            }
        case "Namespace":
            let name = o["metadata"]?["name"]?.stringValue ?? ""
            var meta = o["metadata"]?.objectValue ?? JSONObject()
            var labels = meta["labels"]?.objectValue ?? JSONObject()
            labels["kubernetes.io/metadata.name"] = .string(name)
            meta["labels"] = .object(labels)
            o["metadata"] = .object(meta)
            var spec = o["spec"]?.objectValue ?? JSONObject()
            if spec["finalizers"] == nil { spec["finalizers"] = .array([.string("kubernetes")]) }
            o["spec"] = .object(spec)
            var status = o["status"]?.objectValue ?? JSONObject()
            if status["phase"] == nil { status["phase"] = .string("Active") }
            o["status"] = .object(status)
        default:
            break
        }
    }

    /// API-server validation on create (`old` nil) or update; the errors as `field: Type…` strings.
    func validate(_ o: JSONObject, old: JSONObject?) -> [String] {
        let name = o["metadata"]?["name"]?.stringValue
        var errors: [String] = []
        if kind == "Namespace" {
            if let name, !name.isEmpty {
                for p in KubeNames.dns1123LabelProblems(name) { errors.append("metadata.name: Invalid value: \(KubeNames.goQuote(name)): \(p)") }
            } else {
                errors.append("metadata.name: Required value: name or generateName is required")
            }
        } else {
            errors += KubeNames.objectNameErrors(name: name, namespace: nil)
        }
        errors += Self.metadataErrors(o)
        switch kind {
        case "Secret": errors += SecretRules.validate(o, old: old)
        case "ConfigMap":
            // Type errors and invalid base64 were rejected while decoding the request (400), before validation.
            if let c = try? ConfigMap.decode(.object(o)).configMap {
                let previous = old.flatMap { try? ConfigMap.decode(.object($0)).configMap }
                errors += ConfigMapAPIRules.violations(c, old: previous).map(\.text)
            }
        default: break
        }
        return errors
    }

    static func metadataErrors(_ o: JSONObject) -> [String] {
        var errors: [String] = []
        for field in ["labels", "annotations"] {
            guard let m = o["metadata"]?[field] else { continue }
            guard case .object(let map) = m else { continue }
            for member in map.members {
                if member.value.stringValue == nil, member.value != .null {
                    errors.append("metadata.\(field)[\(member.key)]: Invalid value: must be a string")
                }
                if field == "labels", let v = member.value.stringValue, v.utf8.count > 63 {
                    errors.append("metadata.labels: Invalid value: \(KubeNames.goQuote(v)): must be no more than 63 characters")
                }
            }
        }
        return errors
    }

    /// Decoding problems the API server reports as 400 before validation: MicroTime fields must carry exactly
    /// six fractional digits (Go parses them with the layout `2006-01-02T15:04:05.000000Z07:00`); byte fields
    /// (a Secret's `data`, a ConfigMap's `binaryData`) must be base64 strings, a ConfigMap's `data` strings.
    func decodeError(_ o: JSONObject) -> APIError? {
        let prefix = "\(kind) in version \(KubeNames.goQuote(version)) cannot be handled as a \(kind): "
        let maps: [(field: String, bytes: Bool)] = switch kind {
        case "Secret": [("data", true)]
        case "ConfigMap": [("data", false), ("binaryData", true)]
        default: []
        }
        for (field, bytes) in maps {
            guard let members = o[field]?.objectValue?.members else { continue }
            for m in members {
                switch m.value {
                case .null: continue
                case .string(let v):
                    if bytes, let at = Self.base64ErrorOffset(v) { return APIError.badRequest(prefix + "illegal base64 data at input byte \(at)") }
                default:
                    let goType = bytes ? "[]uint8" : "string"
                    return APIError.badRequest(prefix + "json: cannot unmarshal \(SecretRules.goTypeName(m.value)) into Go struct field \(kind).\(field) of type \(goType)")
                }
            }
        }
        let values: [String?] = switch kind {
        case "Lease": [o["spec"]?["acquireTime"]?.stringValue, o["spec"]?["renewTime"]?.stringValue]
        case "Event": [o["eventTime"]?.stringValue]
        default: []
        }
        for case let v? in values {
            let ok = v.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$"#, options: .regularExpression) != nil
            if !ok {
                let rest = v.count > 19 ? String(v.dropFirst(19)) : ""
                return APIError.badRequest("\(kind) in version \(KubeNames.goQuote(version)) cannot be handled as a \(kind): parsing time \(KubeNames.goQuote(v)) as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \(KubeNames.goQuote(rest)) as \".000000\"")
            }
        }
        return nil
    }

    /// Where Go's standard base64 decoder stops on `s`, or nil when it decodes: the first byte outside the alphabet
    /// or misplaced padding, else the start of an incomplete final quantum.
    static func base64ErrorOffset(_ s: String) -> Int? {
        let bytes = Array(s.utf8)
        var padding = 0
        for (i, c) in bytes.enumerated() {
            let alphabet = (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2B || c == 0x2F
            if c == 0x3D {
                // Padding only in the last two places of the final quantum.
                guard bytes.count % 4 == 0, i >= bytes.count - 2, i % 4 >= 2 else { return i }
                padding += 1
            } else if !alphabet || padding > 0 {
                return i
            }
        }
        if bytes.count % 4 != 0 { return bytes.count - bytes.count % 4 }
        return nil
    }
}

/// The API server's Secret rules (ValidateSecret / ValidateSecretUpdate) come from Core's `SecretAPIRules`, the
/// same code `dynsecret validate` uses; only the JSON error wording (Go's, as the real server prints it) is local.
enum SecretRules {
    static func validate(_ o: JSONObject, old: JSONObject?) -> [String] {
        // Type errors and invalid base64 were rejected while decoding the request (400), before validation.
        guard let secret = try? Secret.decode(.object(o)).secret else { return [] }
        let previous = old.flatMap { try? Secret.decode(.object($0)).secret }
        return SecretAPIRules.violations(secret, old: previous, jsonError: goJSONObjectError).map(\.text)
    }

    /// Go's error text for decoding `bytes` into a map, or nil when it decodes.
    static func goJSONObjectError(_ bytes: [UInt8]) -> String? {
        do {
            let v = try JSONParser.parse(bytes)
            switch v {
            case .object, .null: return nil
            default: return "json: cannot unmarshal \(goTypeName(v)) into Go value of type map[string]interface {}"
            }
        } catch {
            let trimmed = bytes.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
            guard let first = trimmed.first else { return "unexpected end of JSON input" }
            if first == UInt8(ascii: "{") || first == UInt8(ascii: "[") || first == UInt8(ascii: "\"") { return "unexpected end of JSON input" }
            return "invalid character '\(Character(Unicode.Scalar(first)))' looking for beginning of value"
        }
    }

    static func goTypeName(_ v: JSONValue) -> String {
        switch v {
        case .array: "array"
        case .string: "string"
        case .number: "number"
        case .bool: "bool"
        default: "object"
        }
    }
}

extension JSONObject {
    /// Members as a dictionary (order-insensitive comparison).
    var asDictionary: [String: JSONValue] {
        var d: [String: JSONValue] = [:]
        for m in members { d[m.key] = m.value }
        return d
    }
}
