/// One registry's credentials in a pull secret.
public struct RegistryCredential: Sendable, Equatable {
    public var username: String
    public var password: String
    public var email: String

    public init(username: String, password: String, email: String = "") {
        self.username = username
        self.password = password
        self.email = email
    }

    /// `base64(username:password)`, the `auth` field.
    public var auth: String { Base64.encode(Array((username + ":" + password).utf8)) }

    /// The entry as kubectl writes it: `username`, `password`, `email` (left out when empty), `auth`.
    public var entryJSON: JSONValue {
        var o = JSONObject()
        o.appendUnchecked("username", .string(username))
        o.appendUnchecked("password", .string(password))
        if !email.isEmpty { o.appendUnchecked("email", .string(email)) }
        o.appendUnchecked("auth", .string(auth))
        return .object(o)
    }

    /// Checks the rules a pull-secret credential must meet to work with the kubelet.
    public func validate() throws(ManifestError) {
        guard !username.isEmpty else { throw ManifestError("username is empty") }
        guard !username.contains(":") else {
            throw ManifestError("username must not contain ':' (the kubelet splits base64(username:password) at the first ':')")
        }
        guard !password.isEmpty else { throw ManifestError("password is empty") }
    }
}

/// A `.dockerconfigjson` payload: `{"auths": {KEY: ENTRY, …}, …}`.
///
/// Entries read from an existing payload are kept byte-for-byte as values (field order, extra fields);
/// other top-level fields are kept too.
public struct DockerConfigJSON: Sendable, Equatable {
    /// Top-level members other than `auths`, in document order.
    public var otherFields: JSONObject
    /// `auths` entries; written with keys sorted by bytes, as Go writes a map.
    public var auths: [String: JSONValue]

    public init() {
        otherFields = JSONObject()
        auths = [:]
    }

    /// Adds or replaces one registry's credentials.
    public mutating func set(_ credential: RegistryCredential, for key: String) {
        auths[key] = credential.entryJSON
    }

    /// The compact payload bytes; for a config built only with `set` they are exactly kubectl's.
    public var bytes: [UInt8] {
        var o = JSONObject()
        let entries = auths.sorted { utf8Less($0.key, $1.key) }.map { ($0.key, $0.value) }
        o.appendUnchecked("auths", .object(JSONObject(entries)))
        for m in otherFields.members { o.appendUnchecked(m.key, m.value) }
        return GoJSONWriter.compact(.object(o))
    }

    /// Parses a `.dockerconfigjson` payload; `auths` must be an object of objects.
    public static func parse(_ bytes: [UInt8]) throws(ManifestError) -> DockerConfigJSON {
        let object = try jsonObject(bytes)
        var config = DockerConfigJSON()
        for m in object.members where m.key != "auths" { config.otherFields.appendUnchecked(m.key, m.value) }
        switch object["auths"] {
        case nil, .null?: break
        case .object(let auths)?:
            for m in auths.members {
                guard case .object = m.value else {
                    throw ManifestError("expected an object, got \(m.value.typeName)", field: "auths[\(m.key)]")
                }
                config.auths[m.key] = m.value
            }
        case let v?:
            throw ManifestError("expected an object, got \(v.typeName)", field: "auths")
        }
        return config
    }

    /// Parses `bytes` as one JSON object, with errors that never quote the text (it holds credentials).
    static func jsonObject(_ bytes: [UInt8]) throws(ManifestError) -> JSONObject {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw ManifestError("not valid JSON (\(error))")
        }
        guard case .object(let object) = value else {
            throw ManifestError("expected a JSON object, got \(value.typeName)")
        }
        return object
    }

    /// Builds the Secret that holds this payload (type `kubernetes.io/dockerconfigjson`).
    public func secret(name: String, namespace: String?) -> Secret {
        Secret(
            metadata: ObjectMeta(name: name, namespace: namespace),
            type: SecretType.dockerConfigJSON,
            data: [".dockerconfigjson": bytes]
        )
    }
}
