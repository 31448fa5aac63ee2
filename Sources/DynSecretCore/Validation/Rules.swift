/// A validation rule: a stable id, its default severity and what it checks.
public struct ValidationRule: Sendable, Hashable {
    public var id: String
    public var severity: Severity
    public var summary: String

    init(_ id: String, _ severity: Severity, _ summary: String) {
        self.id = id
        self.severity = severity
        self.summary = summary
    }
}

extension ValidationRule {
    // Input
    public static let manifestSyntax = ValidationRule("manifest-syntax", .error, "A document cannot be read (syntax, encoding, size or nesting)")
    public static let manifestNotObject = ValidationRule("manifest-not-object", .error, "A document is not a Kubernetes object")
    public static let manifestNoKind = ValidationRule("manifest-no-kind", .error, "An object has no apiVersion or kind")
    public static let duplicateObject = ValidationRule("duplicate-object", .warning, "The same object appears more than once in the input")

    // API server rules for Secrets (these make `kubectl apply` fail)
    public static let secretInvalidField = ValidationRule("secret-invalid-field", .error, "A Secret field has the wrong type or invalid base64")
    public static let secretUnknownField = ValidationRule("secret-unknown-field", .error, "A Secret has a field the API does not know (strict field validation rejects it)")
    public static let secretName = ValidationRule("secret-name", .error, "The Secret name is missing or not a DNS-1123 subdomain")
    public static let secretNamespace = ValidationRule("secret-namespace", .error, "The namespace is not a DNS-1123 label")
    public static let secretKey = ValidationRule("secret-key", .error, "A data key is not a valid Secret key name")
    public static let secretSize = ValidationRule("secret-size", .error, "The Secret's data exceeds 1 MiB")
    public static let annotationsSize = ValidationRule("annotations-size", .error, "The object's annotations exceed 256 KiB in all")
    public static let secretRequiredKey = ValidationRule("secret-required-key", .error, "A key the Secret type requires is missing")
    public static let secretPayloadJSON = ValidationRule("secret-payload-json", .error, "A docker config payload is not a JSON object")
    public static let secretImmutableField = ValidationRule("secret-immutable-field", .error, "An update changes type, or data of an immutable Secret")
    public static let secretRequiredAnnotation = ValidationRule("secret-required-annotation", .error, "A service-account-token Secret lacks kubernetes.io/service-account.name")

    // API server rules for ConfigMaps
    public static let configMapInvalidField = ValidationRule("configmap-invalid-field", .error, "A ConfigMap field has the wrong type or invalid base64")
    public static let configMapUnknownField = ValidationRule("configmap-unknown-field", .error, "A ConfigMap has a field the API does not know (strict field validation rejects it)")
    public static let configMapName = ValidationRule("configmap-name", .error, "The ConfigMap name is missing or not a DNS-1123 subdomain")
    public static let configMapKey = ValidationRule("configmap-key", .error, "A data or binaryData key is invalid, or in both")
    public static let configMapSize = ValidationRule("configmap-size", .error, "The ConfigMap's data and binaryData exceed 1 MiB together")
    public static let configMapImmutableField = ValidationRule("configmap-immutable-field", .error, "An update changes data, binaryData or immutable of an immutable ConfigMap")

    // Pull secrets, as the kubelet reads them
    public static let pullSecretMalformed = ValidationRule("pull-secret-malformed", .error, "The kubelet cannot decode this pull secret; every pull of a pod using it fails")
    public static let pullSecretNoCredentials = ValidationRule("pull-secret-no-credentials", .error, "The pull secret holds no registry credentials")
    public static let pullSecretAuthMismatch = ValidationRule("pull-secret-auth-mismatch", .warning, "auth disagrees with username/password (the kubelet uses auth)")
    public static let pullSecretUsernameColon = ValidationRule("pull-secret-username-colon", .error, "A username contains ':' (the kubelet splits auth at the first ':')")
    public static let pullSecretEmptyCredential = ValidationRule("pull-secret-empty-credential", .warning, "An entry has neither username nor password")
    public static let pullSecretInvalidRegistry = ValidationRule("pull-secret-invalid-registry", .warning, "A registry key the kubelet cannot parse (it drops the entry)")
    public static let pullSecretUnmatchableKey = ValidationRule("pull-secret-unmatchable-key", .warning, "A registry key that no image reference can match")
    public static let pullSecretIdentityToken = ValidationRule("pull-secret-identity-token", .note, "identitytoken/registrytoken fields are ignored by the kubelet")

    // Other Secret types
    public static let tlsCertInvalid = ValidationRule("tls-cert-invalid", .error, "tls.crt does not hold a PEM certificate")
    public static let tlsKeyInvalid = ValidationRule("tls-key-invalid", .error, "tls.key does not hold a PEM private key")
    public static let tlsKeyMismatch = ValidationRule("tls-key-mismatch", .error, "tls.key does not belong to the certificate in tls.crt")
    public static let tlsCertExpired = ValidationRule("tls-cert-expired", .error, "The certificate has expired")
    public static let tlsCertExpiring = ValidationRule("tls-cert-expiring", .warning, "The certificate expires within the warning window")
    public static let tlsCertNotYetValid = ValidationRule("tls-cert-not-yet-valid", .warning, "The certificate is not valid yet")
    public static let sshKeyInvalid = ValidationRule("ssh-key-invalid", .error, "ssh-privatekey does not hold a private key")
    public static let basicAuthIncomplete = ValidationRule("basic-auth-incomplete", .warning, "A basic-auth Secret lacks a username or password")
    public static let bootstrapToken = ValidationRule("bootstrap-token", .error, "A bootstrap token Secret the authenticator would reject")
    public static let bootstrapTokenExpired = ValidationRule("bootstrap-token-expired", .warning, "A bootstrap token whose expiration has passed")

    // Workloads and image coverage
    public static let imageMissing = ValidationRule("image-missing", .error, "A container has no image")
    public static let imageInvalid = ValidationRule("image-invalid", .error, "An image reference the kubelet cannot parse")
    public static let imageUncovered = ValidationRule("image-uncovered", .note, "No pull secret of the pod covers the image's registry (error for --private-registry registries)")
    public static let pullSecretMissing = ValidationRule("pull-secret-missing", .warning, "A referenced pull secret is not in the input")
    public static let pullSecretWrongType = ValidationRule("pull-secret-wrong-type", .warning, "A referenced pull secret is not of a pull-secret type (the kubelet ignores it)")
    public static let pullSecretBrokenRef = ValidationRule("pull-secret-broken-ref", .error, "A referenced pull secret is malformed: every image pull of the pod fails")
    public static let pullSecretEmptyRef = ValidationRule("pull-secret-empty-ref", .warning, "An imagePullSecrets entry has no name")
    public static let serviceAccountUnknown = ValidationRule("service-account-unknown", .note, "The pod's ServiceAccount is not in the input; its imagePullSecrets are unknown")

    // Registry checks (opt-in: validate --verify-pull)
    public static let imagePullFailed = ValidationRule("image-pull-failed", .error, "--verify-pull: the registry refuses the pull with the credentials the kubelet would try")

    /// Every rule, in documentation order.
    public static let all: [ValidationRule] = [
        .manifestSyntax, .manifestNotObject, .manifestNoKind, .duplicateObject,
        .secretInvalidField, .secretUnknownField, .secretName, .secretNamespace, .secretKey, .secretSize, .annotationsSize, .secretRequiredKey,
        .secretPayloadJSON, .secretRequiredAnnotation, .secretImmutableField,
        .configMapInvalidField, .configMapUnknownField, .configMapName, .configMapKey, .configMapSize, .configMapImmutableField,
        .pullSecretMalformed, .pullSecretNoCredentials, .pullSecretAuthMismatch, .pullSecretUsernameColon, .pullSecretEmptyCredential,
        .pullSecretInvalidRegistry, .pullSecretUnmatchableKey, .pullSecretIdentityToken,
        .tlsCertInvalid, .tlsKeyInvalid, .tlsKeyMismatch, .tlsCertExpired, .tlsCertExpiring, .tlsCertNotYetValid,
        .sshKeyInvalid, .basicAuthIncomplete, .bootstrapToken, .bootstrapTokenExpired,
        .imageMissing, .imageInvalid, .imageUncovered, .pullSecretMissing, .pullSecretWrongType, .pullSecretBrokenRef,
        .pullSecretEmptyRef, .serviceAccountUnknown, .imagePullFailed,
    ]
}

/// Certificate and key parsing, supplied by the crypto layer (Core has no C).
public protocol KeyMaterialInspector: Sendable {
    /// The certificates in PEM text, in order; throws when there is none or one does not parse.
    func certificates(pem: [UInt8]) throws(KeyMaterialError) -> [CertificateInfo]
    /// The algorithm of a PEM private key (`RSA`, `EC`, `ED25519`, …); throws when it does not parse.
    func privateKey(pem: [UInt8]) throws(KeyMaterialError) -> String
    /// Whether the private key belongs to the first certificate.
    func keyMatchesCertificate(certificatePEM: [UInt8], keyPEM: [UInt8]) -> Bool
    /// The key type of an SSH private key (PEM or OpenSSH format); throws when it does not parse or is encrypted without support.
    func sshPrivateKey(_ bytes: [UInt8]) throws(KeyMaterialError) -> String
}

/// Why key material did not parse; never contains key bytes.
public struct KeyMaterialError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What validation needs to know about a certificate.
public struct CertificateInfo: Sendable, Equatable {
    public var subject: String
    /// Seconds since the Unix epoch.
    public var notBefore: Int64
    public var notAfter: Int64

    public init(subject: String, notBefore: Int64, notAfter: Int64) {
        self.subject = subject
        self.notBefore = notBefore
        self.notAfter = notAfter
    }
}
