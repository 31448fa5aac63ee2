/// Reading a Secret as the kubelet reads a pull secret (`MakeDockerKeyring`).
public enum PullSecret {
    /// The registry entries of `secret` in document order, or nil when the kubelet does not use it as a pull secret:
    /// only `kubernetes.io/dockerconfigjson` with a non-empty `.dockerconfigjson` and `kubernetes.io/dockercfg`
    /// with a non-empty `.dockercfg` count.
    ///
    /// Throws where the kubelet's JSON decoding fails; such a Secret breaks every image pull of a pod that uses it.
    /// Error fields are relative to the payload (`auths[ghcr.io].auth`); messages never contain values.
    public static func entries(of secret: Secret) throws(ManifestError) -> [(key: String, credential: RegistryCredential)]? {
        let data = secret.mergedData
        switch secret.effectiveType {
        case SecretType.dockerConfigJSON:
            guard let bytes = data[".dockerconfigjson"], !bytes.isEmpty else { return nil }
            let top = try parseTop(bytes)
            guard case .object(let object)? = top else { return [] }
            // Go matches the `auths` field name in any letter case.
            let auths = object.members.first { $0.key == "auths" } ?? object.members.first { asciiCaseInsensitiveEqual($0.key, "auths") }
            switch auths?.value {
            case nil, .null?: return []
            case .object(let o)?: return try decodeEntries(o, prefix: auths!.key)
            case let v?: throw ManifestError("expected an object, got \(v.typeName)", field: auths!.key)
            }
        case SecretType.dockercfg:
            guard let bytes = data[".dockercfg"], !bytes.isEmpty else { return nil }
            guard case .object(let object)? = try parseTop(bytes) else { return [] }
            return try decodeEntries(object, prefix: nil)
        default:
            return nil
        }
    }

    /// nil for JSON `null`; throws for invalid JSON or a non-object.
    private static func parseTop(_ bytes: [UInt8]) throws(ManifestError) -> JSONValue? {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw ManifestError("not valid JSON (\(error))")
        }
        switch value {
        case .null: return nil
        case .object: return value
        default: throw ManifestError("expected a JSON object, got \(value.typeName)")
        }
    }

    private static func decodeEntries(_ object: JSONObject, prefix: String?) throws(ManifestError) -> [(key: String, credential: RegistryCredential)] {
        var out: [(key: String, credential: RegistryCredential)] = []
        for m in object.members {
            let path = prefix.map { "\($0)[\(m.key)]" } ?? m.key
            let entry: JSONObject
            switch m.value {
            case .object(let o): entry = o
            case .null: entry = JSONObject()
            default: throw ManifestError("expected an object, got \(m.value.typeName)", field: path)
            }
            do {
                let credential = try DockerConfigEntry.credential(in: entry) ?? RegistryCredential(username: "", password: "")
                out.append((m.key, credential))
            } catch {
                throw ManifestError(error.message, field: path + (error.field.map { "." + $0 } ?? ""))
            }
        }
        return out
    }
}
