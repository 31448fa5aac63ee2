/// What validation learned about one Secret.
struct SecretCheck {
    var ref: ObjectRef
    var location: Location
    var secret: Secret?
    /// The kubelet's view: nil when the Secret is not used as a pull secret.
    var pullEntries: [(key: String, credential: RegistryCredential)]?
    /// Set when the kubelet cannot decode the Secret as a pull secret.
    var pullError: String?
}

/// Where an object sits in the input.
struct Location {
    var source: String?
    var document: Int?
    var line: Int?
    /// `items[3].` for an object inside a List, else empty.
    var fieldPrefix: String

    func finding(_ rule: ValidationRule, _ message: String, object: ObjectRef?, field: String?, severity: Severity? = nil) -> Finding {
        Finding(rule: rule, message: message, severity: severity, source: source, document: document, line: line, object: object,
                field: field.map { fieldPrefix + $0 } ?? (fieldPrefix.isEmpty ? nil : String(fieldPrefix.dropLast())))
    }
}

extension Validator {
    /// Checks one ConfigMap: the API server's rules (`ConfigMapAPIRules`), with its wording.
    func checkConfigMap(_ object: JSONObject, namespace: String, location: Location, into findings: inout [Finding]) {
        var ref = ObjectRef(kind: "ConfigMap", namespace: namespace, name: object["metadata"]?["name"]?.stringValue)
        func add(_ rule: ValidationRule, _ message: String, field: String?) {
            findings.append(location.finding(rule, message, object: ref, field: field))
        }
        let decoded: (configMap: ConfigMap, unknownFields: [String])
        do {
            decoded = try ConfigMap.decode(.object(object))
        } catch {
            add(.configMapInvalidField, error.message, field: error.field)
            return
        }
        let c = decoded.configMap
        ref.namespace = c.metadata.namespace ?? namespace
        Self.checkIdentity(c.metadata, unknownFields: decoded.unknownFields, unknownRule: .configMapUnknownField, nameRule: .configMapName) { add($0, $1, field: $2) }
        for v in ConfigMapAPIRules.violations(c) { add(v.rule, v.message, field: v.field == "[]" ? nil : v.field) }
    }

    /// Unknown fields, then name and namespace, with the API server's wording (Secrets and ConfigMaps alike).
    static func checkIdentity(_ meta: ObjectMeta, unknownFields: [String], unknownRule: ValidationRule, nameRule: ValidationRule,
                              add: (ValidationRule, String, String?) -> Void) {
        for field in unknownFields {
            add(unknownRule, "unknown field \(KubeNames.goQuote(field.split(separator: ".").last.map(String.init) ?? field))", field)
        }
        if (meta.name ?? "").isEmpty && (meta.generateName ?? "").isEmpty {
            add(nameRule, "Required value: name or generateName is required", "metadata.name")
        } else if let n = meta.name, !n.isEmpty {
            for p in KubeNames.dns1123SubdomainProblems(n) { add(nameRule, "Invalid value: \(KubeNames.goQuote(n)): \(p)", "metadata.name") }
        }
        if let ns = meta.namespace {
            for p in KubeNames.dns1123LabelProblems(ns) { add(.secretNamespace, "Invalid value: \(KubeNames.goQuote(ns)): \(p)", "metadata.namespace") }
        }
    }

    /// Checks one Secret object: the API server's rules first, then what the kubelet and the type's consumers need.
    func checkSecret(_ object: JSONObject, namespace: String, location: Location, into findings: inout [Finding]) -> SecretCheck {
        let name = object["metadata"]?["name"]?.stringValue
        var ref = ObjectRef(kind: "Secret", namespace: namespace, name: name)
        var check = SecretCheck(ref: ref, location: location)
        func add(_ rule: ValidationRule, _ message: String, field: String?, severity: Severity? = nil) {
            findings.append(location.finding(rule, message, object: ref, field: field, severity: severity))
        }

        let decoded: (secret: Secret, unknownFields: [String])
        do {
            decoded = try Secret.decode(.object(object))
        } catch {
            add(.secretInvalidField, error.message, field: error.field)
            return check
        }
        var secret = decoded.secret
        if secret.metadata.namespace == nil { secret.metadata.namespace = namespace }
        ref.namespace = secret.metadata.namespace
        check.ref = ref
        check.secret = secret
        Self.checkIdentity(secret.metadata, unknownFields: decoded.unknownFields, unknownRule: .secretUnknownField, nameRule: .secretName) { add($0, $1, field: $2) }

        // The API server's own rules, then what consumers of each type need.
        for v in SecretAPIRules.violations(secret) { add(v.rule, v.message, field: v.field) }
        let data = secret.mergedData
        switch secret.effectiveType {
        case SecretType.dockercfg, SecretType.dockerConfigJSON:
            let key = SecretType.pullSecretKey(forType: secret.effectiveType)!
            guard let payload = data[key] else { break }
            checkPullPayload(secret, key: key, payload: payload, check: &check, add: add)
        case SecretType.basicAuth:
            if data["username"] != nil || data["password"] != nil, (data["username"] ?? []).isEmpty || (data["password"] ?? []).isEmpty {
                add(.basicAuthIncomplete, (data["username"] ?? []).isEmpty ? "the username is missing or empty" : "the password is missing or empty",
                    field: (data["username"] ?? []).isEmpty ? "data[username]" : "data[password]")
            }
        case SecretType.sshAuth:
            if let inspector, let key = data["ssh-privatekey"], !key.isEmpty {
                do {
                    _ = try inspector.sshPrivateKey(key)
                } catch {
                    add(.sshKeyInvalid, error.message, field: "data[ssh-privatekey]")
                }
            }
        case SecretType.tls:
            if let cert = data["tls.crt"], let key = data["tls.key"] { checkTLS(cert: cert, key: key, add: add) }
        case SecretType.bootstrapToken:
            checkBootstrapToken(secret, add: add)
        default:
            break
        }
        return check
    }

    private func checkPullPayload(_ secret: Secret, key: String, payload: [UInt8], check: inout SecretCheck,
                                  add: (ValidationRule, String, String?, Severity?) -> Void) {
        let field = "data[\(key)]"
        // The API server's verdict on the payload was reported above; a non-object payload leaves the kubelet nothing.
        let top = try? JSONParser.parse(payload)
        switch top {
        case .object?, .null?: break
        default:
            check.pullError = "not a JSON object"
            return
        }
        // The kubelet.
        let entries: [(key: String, credential: RegistryCredential)]
        do {
            entries = try PullSecret.entries(of: secret) ?? []
        } catch {
            add(.pullSecretMalformed, error.message, error.field.map { field + "." + $0 } ?? field, nil)
            check.pullError = error.message
            return
        }
        check.pullEntries = entries
        let object = top?.objectValue ?? JSONObject()
        let entryObjects: JSONObject = key == ".dockercfg" ? object : (object["auths"]?.objectValue ?? JSONObject())
        let prefix = key == ".dockercfg" ? field + "." : field + ".auths"
        // Entries with neither username nor password are what `docker login` leaves behind when a credential
        // store keeps the real credentials.
        let usable = entries.filter { !($0.credential.username.isEmpty && $0.credential.password.isEmpty) }
        if usable.isEmpty {
            var why = entries.isEmpty ? (key == ".dockercfg" ? "no registry entries" : "no entries in auths") : "no entry holds a username or password"
            let helpers = [object["credsStore"] != nil ? "credsStore" : nil, object["credHelpers"] != nil ? "credHelpers" : nil].compactMap { $0 }
            if !helpers.isEmpty { why += "; \(helpers.joined(separator: " and ")) point to credential helpers on a workstation, which no kubelet can run" }
            add(.pullSecretNoCredentials, why, field, nil)
        }
        for (configKey, credential) in entries {
            let entryField = key == ".dockercfg" ? prefix + configKey : "\(prefix)[\(configKey)]"
            let raw = entryObjects[configKey]?.objectValue ?? JSONObject()
            guard let normalized = CredentialKeyring.normalize(configKey) else {
                add(.pullSecretInvalidRegistry, "the kubelet cannot parse \(KubeNames.goQuote(configKey)) as a registry and ignores this entry", entryField, nil)
                continue
            }
            let host = normalized.split(separator: "/", maxSplits: 1).first.map(String.init) ?? normalized
            if (host == "index.docker.io" || host == "registry-1.docker.io") && normalized != "index.docker.io" {
                let suggestion = normalized.contains("/") ? "docker.io/" + normalized.split(separator: "/", maxSplits: 1)[1] : RegistryServer.dockerHubKey
                add(.pullSecretUnmatchableKey, "no image can match \(KubeNames.goQuote(configKey)): Docker Hub images are looked up as docker.io/…; write \(suggestion)", entryField, nil)
            }
            if credential.username.isEmpty && credential.password.isEmpty && !usable.isEmpty {
                add(.pullSecretEmptyCredential, "the entry has no username or password", entryField, nil)
            }
            if raw["identitytoken"] != nil || raw["registrytoken"] != nil {
                add(.pullSecretIdentityToken, "identitytoken and registrytoken are not used by the kubelet", entryField, nil)
            }
            let auth = raw["auth"]?.stringValue ?? ""
            let user = raw["username"]?.stringValue ?? ""
            let pass = raw["password"]?.stringValue ?? ""
            if !auth.isEmpty {
                if (!user.isEmpty || !pass.isEmpty) && (user != credential.username || pass != credential.password) {
                    add(.pullSecretAuthMismatch, "auth decodes to other credentials than username/password; the kubelet uses auth", entryField + ".auth", nil)
                }
                if user.contains(":") {
                    add(.pullSecretUsernameColon, "username contains ':'", entryField + ".username", nil)
                }
            } else if credential.username.contains(":") {
                add(.pullSecretUsernameColon, "username contains ':'", entryField + ".username", nil)
            }
        }
    }

    private func checkTLS(cert: [UInt8], key: [UInt8], add: (ValidationRule, String, String?, Severity?) -> Void) {
        guard let inspector else { return }
        var certs: [CertificateInfo] = []
        do {
            certs = try inspector.certificates(pem: cert)
        } catch {
            add(.tlsCertInvalid, error.message, "data[tls.crt]", nil)
        }
        var keyOK = true
        do {
            _ = try inspector.privateKey(pem: key)
        } catch {
            keyOK = false
            add(.tlsKeyInvalid, error.message, "data[tls.key]", nil)
        }
        guard !certs.isEmpty else { return }
        if keyOK && !inspector.keyMatchesCertificate(certificatePEM: cert, keyPEM: key) {
            add(.tlsKeyMismatch, "the private key does not match the certificate's public key", "data[tls.key]", nil)
        }
        let now = options.now
        for (i, c) in certs.enumerated() {
            let which = i == 0 ? "the certificate" : "chain certificate \(i + 1)"
            if c.notAfter < now {
                add(.tlsCertExpired, "\(which) (\(c.subject)) expired at \(RFC3339.format(c.notAfter))", "data[tls.crt]", nil)
            } else if c.notAfter < now + Int64(options.expiryWarningDays) * 86400 {
                let days = (c.notAfter - now) / 86400
                add(.tlsCertExpiring, "\(which) (\(c.subject)) expires at \(RFC3339.format(c.notAfter)), in \(days) day\(days == 1 ? "" : "s")", "data[tls.crt]", nil)
            }
            if c.notBefore > now {
                add(.tlsCertNotYetValid, "\(which) (\(c.subject)) is valid only from \(RFC3339.format(c.notBefore))", "data[tls.crt]", nil)
            }
        }
    }

    private func checkBootstrapToken(_ secret: Secret, add: (ValidationRule, String, String?, Severity?) -> Void) {
        let data = secret.mergedData
        func text(_ k: String) -> String? { data[k].map { String(decoding: $0, as: UTF8.self) } }
        func matches(_ s: String, count: Int) -> Bool {
            s.utf8.count == count && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) }
        }
        if secret.metadata.namespace != "kube-system" {
            add(.bootstrapToken, "bootstrap tokens are read only from the kube-system namespace", "metadata.namespace", nil)
        }
        let id = text("token-id")
        if let id {
            if !matches(id, count: 6) { add(.bootstrapToken, "token-id must match [a-z0-9]{6}", "data[token-id]", nil) }
            if let name = secret.metadata.name, name != "bootstrap-token-" + id {
                add(.bootstrapToken, "the name must be bootstrap-token-<token-id>", "metadata.name", nil)
            }
        } else {
            add(.bootstrapToken, "Required value", "data[token-id]", nil)
        }
        if let s = text("token-secret") {
            if !matches(s, count: 16) { add(.bootstrapToken, "token-secret must match [a-z0-9]{16}", "data[token-secret]", nil) }
        } else {
            add(.bootstrapToken, "Required value", "data[token-secret]", nil)
        }
        if let exp = text("expiration") {
            if let t = RFC3339.parse(exp) {
                if t < options.now { add(.bootstrapTokenExpired, "the token expired at \(RFC3339.format(t))", "data[expiration]", nil) }
            } else {
                add(.bootstrapToken, "expiration is not an RFC 3339 time; the token is treated as expired", "data[expiration]", nil)
            }
        }
        var anyUsage = false
        for usage in ["usage-bootstrap-authentication", "usage-bootstrap-signing"] {
            guard let v = text(usage) else { continue }
            if v == "true" {
                anyUsage = true
            } else {
                add(.bootstrapToken, "only the value \"true\" enables this usage; this value counts as false", "data[\(usage)]", .warning)
            }
        }
        if !anyUsage {
            add(.bootstrapToken, "neither usage-bootstrap-authentication nor usage-bootstrap-signing is \"true\": the token has no use", "data", .warning)
        }
        if let groups = text("auth-extra-groups") {
            for g in groups.split(separator: ",", omittingEmptySubsequences: false) where !Self.validBootstrapGroup(String(g)) {
                add(.bootstrapToken, "extra group \(KubeNames.goQuote(String(g))) must match system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]", "data[auth-extra-groups]", nil)
            }
        }
    }

    static func validBootstrapGroup(_ g: String) -> Bool {
        let prefix = "system:bootstrappers:"
        guard g.hasPrefix(prefix) else { return false }
        let rest = Array(g.utf8.dropFirst(prefix.utf8.count))
        guard let last = rest.last, rest.count <= 256 else { return false }
        func ok(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7A) }
        return ok(last) && rest.dropLast().allSatisfy { ok($0) || $0 == 0x3A || $0 == 0x2D }
    }
}
