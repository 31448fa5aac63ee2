/// The API server's own Secret rules (`ValidateSecret`, and `ValidateSecretUpdate` when the stored object is given),
/// with its wording. Shared by `validate` and by the test API server, so both say exactly what kube-apiserver says.
public enum SecretAPIRules {
    /// One rule violation: `field: message`, as in a 422 `Status` cause.
    public struct Violation: Sendable, Equatable {
        public var rule: ValidationRule
        public var field: String
        public var message: String

        /// `field: message`, the API server's form.
        public var text: String { "\(field): \(message)" }
    }

    public static let maxSize = 1_048_576
    /// The most bytes all annotations of an object may take, keys and values together.
    public static let maxAnnotationBytes = 262_144

    /// The violations of `secret` (with `stringData` merged, as stored); `old` is the stored object on update.
    ///
    /// `jsonError` describes why a docker config payload is not a JSON object (nil when it is one); the default never
    /// quotes the payload.
    public static func violations(_ secret: Secret, old: Secret? = nil,
                                  jsonError: ([UInt8]) -> String? = redactedJSONError) -> [Violation] {
        var out: [Violation] = []
        func add(_ rule: ValidationRule, _ field: String, _ message: String) { out.append(Violation(rule: rule, field: field, message: message)) }
        let type = secret.effectiveType
        let data = secret.mergedData
        if let old {
            if type != old.effectiveType { add(.secretImmutableField, "type", "Invalid value: \(KubeNames.goQuote(type)): field is immutable") }
            if old.immutable == true {
                if secret.immutable != true { add(.secretImmutableField, "immutable", "Forbidden: field is immutable when `immutable` is set") }
                if data != old.mergedData { add(.secretImmutableField, "data", "Forbidden: field is immutable when `immutable` is set") }
            }
        }
        var total = 0
        for key in data.keys.sorted(by: utf8Less) {
            total += data[key]!.count
            for p in keyProblems(key) { add(.secretKey, "data[\(key)]", "Invalid value: \(KubeNames.goQuote(key)): \(p)") }
        }
        if total > maxSize { add(.secretSize, "data", "Too long: may not be more than \(maxSize) bytes") }
        // ObjectMeta: keys and values of all annotations together (TotalAnnotationSizeLimitB).
        let annotationBytes = secret.metadata.annotations.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        if annotationBytes > maxAnnotationBytes {
            add(.annotationsSize, "metadata.annotations", "Too long: may not be more than \(maxAnnotationBytes) bytes")
        }
        switch type {
        case SecretType.serviceAccountToken:
            if (secret.metadata.annotations["kubernetes.io/service-account.name"] ?? "").isEmpty {
                add(.secretRequiredAnnotation, "metadata.annotations[kubernetes.io/service-account.name]", "Required value")
            }
        case SecretType.dockercfg, SecretType.dockerConfigJSON:
            let key = SecretType.pullSecretKey(forType: type)!
            if let payload = data[key] {
                if let e = jsonError(payload) { add(.secretPayloadJSON, "data[\(key)]", "Invalid value: \"<secret contents redacted>\": \(e)") }
            } else {
                add(.secretRequiredKey, "data[\(key)]", "Required value")
            }
        case SecretType.basicAuth:
            if data["username"] == nil && data["password"] == nil {
                add(.secretRequiredKey, "data[username]", "Required value")
                add(.secretRequiredKey, "data[password]", "Required value")
            }
        case SecretType.sshAuth:
            if (data["ssh-privatekey"] ?? []).isEmpty { add(.secretRequiredKey, "data[ssh-privatekey]", "Required value") }
        case SecretType.tls:
            if data["tls.crt"] == nil { add(.secretRequiredKey, "data[tls.crt]", "Required value") }
            if data["tls.key"] == nil { add(.secretRequiredKey, "data[tls.key]", "Required value") }
        default:
            break
        }
        return out
    }

    /// The API server's key-name rules (`IsConfigMapKey`).
    public static func keyProblems(_ key: String) -> [String] {
        var out: [String] = []
        if key.utf8.count > 253 { out.append("must be no more than 253 characters") }
        let valid = !key.isEmpty && key.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x2E || c == 0x5F
        }
        if !valid {
            out.append("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
        }
        if key == "." {
            out.append("must not be '.'")
        } else if key == ".." {
            out.append("must not be '..'")
        } else if key.hasPrefix("..") {
            out.append("must not start with '..'")
        }
        return out
    }

    /// Why `payload` is not a JSON object (`null` passes, as Go decodes it into a nil map), by position only.
    public static func redactedJSONError(_ payload: [UInt8]) -> String? {
        let top: JSONValue
        do {
            top = try JSONParser.parse(payload)
        } catch {
            return "\(error.message) at line \(error.line), column \(error.column)"
        }
        switch top {
        case .object, .null: return nil
        case .array: return "json: cannot unmarshal array into Go value of type map[string]interface {}"
        default: return "json: cannot unmarshal \(top.typeName) into Go value of type map[string]interface {}"
        }
    }
}
