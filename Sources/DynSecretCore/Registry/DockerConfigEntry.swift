/// Reading credentials out of docker config entries the way the kubelet does.
public enum DockerConfigEntry {
    /// The credential in an `auths` entry, decoded as the kubelet decodes it, or `nil` when the entry has none.
    ///
    /// A non-empty `auth` wins over `username`/`password`: it is base64 (padded when it ends in `=`,
    /// unpadded otherwise) of `username:password`, split at the first `:`. Field names match in any
    /// letter case, as Go's JSON decoder matches them.
    public static func credential(in entry: JSONObject) throws(ManifestError) -> RegistryCredential? {
        func field(_ name: String) throws(ManifestError) -> String {
            let member = entry.members.first { $0.key == name } ?? entry.members.first { asciiCaseInsensitiveEqual($0.key, name) }
            switch member?.value {
            case nil, .null?: return ""
            case .string(let s)?: return s
            case let v?: throw ManifestError("expected string, got \(v.typeName)", field: member!.key)
            }
        }
        let email = try field("email")
        let auth = try field("auth")
        let trimmed = auth.trimmingASCIIWhitespace()
        if !auth.isEmpty {
            guard let decoded = Base64.decode(trimmed, padded: trimmed.hasSuffix("=")) else {
                throw ManifestError("invalid base64 in auth field", field: "auth")
            }
            guard let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else {
                throw ManifestError("unable to parse auth field, must be formatted as base64(username:password)", field: "auth")
            }
            return RegistryCredential(username: String(decoding: decoded[..<colon], as: UTF8.self),
                                      password: String(decoding: decoded[(colon + 1)...], as: UTF8.self), email: email)
        }
        let username = try field("username")
        let password = try field("password")
        if username.isEmpty && password.isEmpty { return nil }
        return RegistryCredential(username: username, password: password, email: email)
    }
}

/// The usable credentials found in a Docker CLI config file (`~/.docker/config.json`).
public struct DockerCLIConfigImport: Sendable {
    /// Credentials by normalized `auths` key, in file order.
    public var credentials: [(key: String, credential: RegistryCredential)] = []
    /// Why entries were left out; these texts name registries, never secret values.
    public var skipped: [String] = []

    /// Reads a Docker CLI config (`{"auths": …, "credsStore": …, "credHelpers": …}`) or a legacy `.dockercfg` map.
    ///
    /// Throws when no usable credential remains; the message explains credential stores and helpers,
    /// which keep credentials outside the file where no kubelet can read them.
    public static func read(_ bytes: [UInt8]) throws(ManifestError) -> DockerCLIConfigImport {
        let top = try DockerConfigJSON.jsonObject(bytes)
        let store = top["credsStore"]?.stringValue ?? ""
        let helpers = top["credHelpers"]?.objectValue?.keys ?? []
        let entries: JSONObject
        let prefix: String
        switch top["auths"] {
        case .object(let o)?:
            entries = o
            prefix = "auths"
        case nil, .null?:
            if top["credsStore"] != nil || top["credHelpers"] != nil || top.isEmpty {
                entries = JSONObject()
            } else {
                entries = top  // legacy ~/.dockercfg: a bare map of entries
            }
            prefix = ""
        case let v?:
            throw ManifestError("expected an object, got \(v.typeName)", field: "auths")
        }

        var result = DockerCLIConfigImport()
        var origin: [String: String] = [:]
        for m in entries.members {
            let path = prefix.isEmpty ? m.key : "\(prefix)[\(m.key)]"
            guard case .object(let entry) = m.value else {
                throw ManifestError("expected an object, got \(m.value.typeName)", field: path)
            }
            let credential: RegistryCredential?
            do {
                credential = try DockerConfigEntry.credential(in: entry)
            } catch {
                throw ManifestError(error.message, field: path + (error.field.map { "." + $0 } ?? ""))
            }
            guard let credential else {
                if entry["identitytoken"] != nil || entry["identityToken"] != nil {
                    result.skipped.append("\(m.key): only an identity token, which the kubelet does not use")
                } else if !store.isEmpty || helpers.contains(m.key) {
                    result.skipped.append("\(m.key): credentials are in a credential store, not in the file")
                } else {
                    result.skipped.append("\(m.key): no credentials")
                }
                continue
            }
            do {
                try credential.validate()
            } catch {
                result.skipped.append("\(m.key): \(error.message)")
                continue
            }
            let key = try RegistryServer.authKey(for: m.key)
            if let i = result.credentials.firstIndex(where: { $0.key == key }) {
                guard result.credentials[i].credential == credential else {
                    throw ManifestError("\(KubeNames.goQuote(origin[key] ?? key)) and \(KubeNames.goQuote(m.key)) both mean \(key) but hold different credentials", field: path)
                }
                continue
            }
            origin[key] = m.key
            result.credentials.append((key, credential))
        }
        if result.credentials.isEmpty {
            var where_: [String] = []
            if !store.isEmpty { where_.append("the credential store \(KubeNames.goQuote(store)) (credsStore)") }
            if !helpers.isEmpty { where_.append("credential helpers for \(helpers.joined(separator: ", ")) (credHelpers)") }
            if !where_.isEmpty {
                throw ManifestError("no usable credentials: they are kept in \(where_.joined(separator: " and ")), outside the file, where no kubelet can read them; use --username with --password-stdin instead")
            }
            throw ManifestError("no usable credentials in auths" + (result.skipped.isEmpty ? "" : " (" + result.skipped.joined(separator: "; ") + ")"))
        }
        return result
    }
}

/// Go's JSON field matching: equal under Unicode simple case folding; ASCII folding covers the fields read here.
func asciiCaseInsensitiveEqual(_ a: String, _ lowercase: String) -> Bool {
    guard a.utf8.count == lowercase.utf8.count else { return false }
    return zip(a.utf8, lowercase.utf8).allSatisfy { x, y in (x >= 0x41 && x <= 0x5A ? x | 0x20 : x) == y }
}

extension String {
    /// Go's `strings.TrimSpace` for ASCII whitespace.
    func trimmingASCIIWhitespace() -> String {
        func ws(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
        let u = utf8
        guard let f = u.first, let l = u.last, ws(f) || ws(l) else { return self }
        let bytes = Array(u)
        var lo = 0
        var hi = bytes.count
        while lo < hi, ws(bytes[lo]) { lo += 1 }
        while hi > lo, ws(bytes[hi - 1]) { hi -= 1 }
        return String(decoding: bytes[lo..<hi], as: UTF8.self)
    }
}
