public import DynSecretCore
public import DynSecretCrypto
internal import Foundation

/// AWS for dynsecret: the default credential chain, endpoint resolution as the SDKs do it, and the two calls made
/// (STS `AssumeRoleWithWebIdentity`, ECR `GetAuthorizationToken`), over the libcurl transport and signed with
/// `SigV4`. Errors carry AWS's error code and message (redacted), never a key, token or signature.
public enum AWS {
    /// Credentials and where they came from (`environment`, `web identity`, `profile NAME`, `container`, `IMDS`).
    public struct ResolvedCredentials: Sendable {
        public var credentials: SigV4.Credentials
        public var source: String
    }

    /// The process environment with the files it names, as the chain reads them (tests give their own).
    public struct Environment: Sendable {
        public var variables: [String: String]
        /// `variables`, or the process environment.
        public init(_ variables: [String: String]? = nil) { self.variables = variables ?? ProcessInfo.processInfo.environment }
        subscript(_ name: String) -> String? {
            guard let v = variables[name], !v.isEmpty else { return nil }
            return v
        }
        var home: String { self["HOME"] ?? NSHomeDirectory() }
        func expand(_ path: String) -> String { path.hasPrefix("~/") ? home + path.dropFirst(1) : path }
    }

    static let timeout: Duration = .seconds(10)
    /// The metadata services answer within a second or are not there.
    static let metadataTimeout: Duration = .seconds(2)

    // MARK: endpoints

    /// The endpoint of `service` (`ECR`, `STS`) in `region`: `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`
    /// (both ignored with `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), then the service's regional endpoint.
    public static func endpoint(_ service: String, region: String, _ env: Environment) -> String {
        if env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]?.lowercased() != "true" {
            if let u = env["AWS_ENDPOINT_URL_\(service.uppercased())"] ?? env["AWS_ENDPOINT_URL"] { return u }
        }
        let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        switch service.uppercased() {
        case "ECR": return "https://api.ecr.\(region).\(suffix)"
        default: return "https://\(service.lowercased()).\(region).\(suffix)"
        }
    }

    // MARK: the credential chain

    /// Resolves credentials in the order of the AWS SDKs' standardized chain: environment keys, web identity
    /// (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`, the token file read again on every call: EKS IRSA), the
    /// shared files (`AWS_PROFILE`; keys, or `role_arn` + `web_identity_token_file`), container credentials
    /// (`AWS_CONTAINER_CREDENTIALS_FULL_URI`/`RELATIVE_URI`, EKS Pod Identity and ECS), then IMDSv2 (unless
    /// `AWS_EC2_METADATA_DISABLED=true`).
    public static func credentials(region: String, _ env: Environment, transport: CurlTransport) async throws(KubeError) -> ResolvedCredentials {
        if let id = env["AWS_ACCESS_KEY_ID"] {
            guard let secret = env["AWS_SECRET_ACCESS_KEY"] else {
                throw KubeError(message: "AWS credentials: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
            }
            return ResolvedCredentials(credentials: SigV4.Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: env["AWS_SESSION_TOKEN"]),
                                       source: "environment")
        }
        if let role = env["AWS_ROLE_ARN"], let tokenFile = env["AWS_WEB_IDENTITY_TOKEN_FILE"] {
            return try await webIdentity(role: role, tokenFile: tokenFile, session: env["AWS_ROLE_SESSION_NAME"], region: region, env, transport: transport,
                                         source: "web identity (AWS_ROLE_ARN)")
        }
        if let resolved = try await sharedFiles(region: region, env, transport: transport) { return resolved }
        if let resolved = try await container(env, transport: transport) { return resolved }
        if env["AWS_EC2_METADATA_DISABLED"]?.lowercased() != "true" {
            do throws(KubeError) {
                return try await imds(env, transport: transport)
            } catch {
                throw KubeError(message: "AWS credentials: none found (environment, web identity, shared files, container credentials), and IMDS: \(error.message)",
                                httpStatus: error.httpStatus)
            }
        }
        throw KubeError(message: "AWS credentials: none found (environment, web identity, shared files, container credentials; IMDS disabled)")
    }

    /// STS `AssumeRoleWithWebIdentity` with the token in `tokenFile` (an unsigned call, as in the SDKs).
    static func webIdentity(role: String, tokenFile: String, session: String?, region: String, _ env: Environment, transport: CurlTransport,
                            source: String) async throws(KubeError) -> ResolvedCredentials {
        guard let data = FileManager.default.contents(atPath: env.expand(tokenFile)) else {
            throw KubeError(message: "AWS web identity: cannot read the token file \(tokenFile)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw KubeError(message: "AWS web identity: the token file \(tokenFile) is empty") }
        let form = [("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", role),
                    ("RoleSessionName", session ?? "dynsecret-\(Int(Date().timeIntervalSince1970))"), ("WebIdentityToken", token)]
        let body = Array(form.map { "\(SigV4.uriEncode($0.0))=\(SigV4.uriEncode($0.1))" }.joined(separator: "&").utf8)
        let url = endpoint("STS", region: region, env)
        let request = HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Accept", "text/xml")],
                                  body: body, timeout: timeout)
        let response = try await send(request, transport, what: "STS AssumeRoleWithWebIdentity")
        guard response.status == 200 else { throw apiError("STS AssumeRoleWithWebIdentity", response) }
        let xml = String(decoding: response.body, as: UTF8.self)
        guard let id = xmlValue(xml, "AccessKeyId"), let secret = xmlValue(xml, "SecretAccessKey"), let sessionToken = xmlValue(xml, "SessionToken") else {
            throw KubeError(message: "STS AssumeRoleWithWebIdentity: the answer holds no credentials")
        }
        return ResolvedCredentials(credentials: SigV4.Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: sessionToken), source: source)
    }

    /// The profile `AWS_PROFILE` (or `default`) of the shared credentials and config files: keys from the
    /// credentials file (`[NAME]`) before the config file (`[profile NAME]`, `[default]`), or a web identity role.
    static func sharedFiles(region: String, _ env: Environment, transport: CurlTransport) async throws(KubeError) -> ResolvedCredentials? {
        let profile = env["AWS_PROFILE"] ?? env["AWS_DEFAULT_PROFILE"] ?? "default"
        let credentialsFile = env.expand(env["AWS_SHARED_CREDENTIALS_FILE"] ?? "~/.aws/credentials")
        let configFile = env.expand(env["AWS_CONFIG_FILE"] ?? "~/.aws/config")
        let fromCredentials = INI.section(credentialsFile, profile)
        let fromConfig = INI.section(configFile, profile == "default" ? "default" : "profile \(profile)")
        guard fromCredentials != nil || fromConfig != nil else {
            if env["AWS_PROFILE"] != nil { throw KubeError(message: "AWS credentials: profile \(profile) is in neither \(credentialsFile) nor \(configFile)") }
            return nil
        }
        for (section, file) in [(fromCredentials, credentialsFile), (fromConfig, configFile)] {
            guard let section, let id = section["aws_access_key_id"] else { continue }
            guard let secret = section["aws_secret_access_key"] else { throw KubeError(message: "AWS profile \(profile) in \(file): aws_access_key_id without aws_secret_access_key") }
            return ResolvedCredentials(credentials: SigV4.Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: section["aws_session_token"]),
                                       source: "profile \(profile)")
        }
        if let config = fromConfig, let role = config["role_arn"], let tokenFile = config["web_identity_token_file"] {
            return try await webIdentity(role: role, tokenFile: tokenFile, session: config["role_session_name"], region: region, env, transport: transport,
                                         source: "profile \(profile) (web identity)")
        }
        if env["AWS_PROFILE"] != nil {
            throw KubeError(message: "AWS credentials: profile \(profile) has no keys and no role_arn + web_identity_token_file (other profile kinds are not supported)")
        }
        return nil
    }

    /// Container credentials (EKS Pod Identity, ECS): a GET to the full or relative URI, with the authorization
    /// token from its file (read on every call) or variable.
    static func container(_ env: Environment, transport: CurlTransport) async throws(KubeError) -> ResolvedCredentials? {
        let url: String
        if let relative = env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] {
            url = "http://169.254.170.2" + relative
        } else if let full = env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] {
            guard let c = URLComponents(string: full), let host = c.host, c.scheme == "https" || (c.scheme == "http" && isAllowedContainerHost(host)) else {
                throw KubeError(message: "AWS container credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback or the container credentials address")
            }
            url = full
        } else {
            return nil
        }
        var headers: [(name: String, value: String)] = [("Accept", "application/json")]
        var token: String?
        if let file = env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] {
            guard let data = FileManager.default.contents(atPath: file) else { throw KubeError(message: "AWS container credentials: cannot read \(file)") }
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            token = env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
        }
        if let token {
            guard !token.contains("\r"), !token.contains("\n") else { throw KubeError(message: "AWS container credentials: the authorization token holds a line break") }
            headers.append(("Authorization", token))
        }
        let response = try await send(HTTPRequest(method: "GET", url: url, headers: headers, timeout: metadataTimeout), transport, what: "AWS container credentials")
        guard response.status == 200 else { throw apiError("AWS container credentials", response) }
        return ResolvedCredentials(credentials: try metadataCredentials(response.body, what: "AWS container credentials"), source: "container")
    }

    /// IMDSv2: a session token (PUT), the instance profile's role name, then its credentials.
    static func imds(_ env: Environment, transport: CurlTransport) async throws(KubeError) -> ResolvedCredentials {
        var base = env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] ?? "http://169.254.169.254"
        while base.hasSuffix("/") { base.removeLast() }
        let what = "AWS IMDS"
        let session = try await send(HTTPRequest(method: "PUT", url: base + "/latest/api/token", headers: [("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
                                                 body: [], timeout: metadataTimeout), transport, what: what)
        guard session.status == 200 else { throw apiError("\(what) token", session) }
        let token = String(decoding: session.body, as: UTF8.self)
        let tokenHeader = [(name: "X-aws-ec2-metadata-token", value: token)]
        let roles = try await send(HTTPRequest(method: "GET", url: base + "/latest/meta-data/iam/security-credentials/", headers: tokenHeader,
                                               timeout: metadataTimeout), transport, what: what)
        guard roles.status == 200 else { throw apiError("\(what): no instance profile", roles) }
        guard let role = String(decoding: roles.body, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init), !role.isEmpty else {
            throw KubeError(message: "\(what): no instance profile role")
        }
        let creds = try await send(HTTPRequest(method: "GET", url: base + "/latest/meta-data/iam/security-credentials/" + SigV4.uriEncode(role), headers: tokenHeader,
                                               timeout: metadataTimeout), transport, what: what)
        guard creds.status == 200 else { throw apiError("\(what) credentials", creds) }
        return ResolvedCredentials(credentials: try metadataCredentials(creds.body, what: what), source: "IMDS")
    }

    static func isAllowedContainerHost(_ host: String) -> Bool {
        let h = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        return h == "localhost" || h.hasPrefix("127.") || h == "::1" || h == "169.254.170.2" || h == "169.254.170.23" || h == "fd00:ec2::23"
    }

    /// `AccessKeyId`, `SecretAccessKey`, `Token` of a container or IMDS answer.
    static func metadataCredentials(_ body: [UInt8], what: String) throws(KubeError) -> SigV4.Credentials {
        guard let v = try? JSONParser.parse(body), let id = v["AccessKeyId"]?.stringValue, let secret = v["SecretAccessKey"]?.stringValue else {
            throw KubeError(message: "\(what): the answer holds no AccessKeyId and SecretAccessKey")
        }
        return SigV4.Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: v["Token"]?.stringValue)
    }

    // MARK: ECR

    /// ECR `GetAuthorizationToken`: one credential per registry (`proxyEndpoint` host, username `AWS`), valid until
    /// the earliest `expiresAt`.
    public static func ecrAuthorizationToken(region: String, registryIDs: [String], _ env: Environment = Environment(),
                                             transport: CurlTransport, now: (@Sendable () -> Double)? = nil)
        async throws(KubeError) -> (credential: MintedCredential, source: String) {
        let resolved = try await credentials(region: region, env, transport: transport)
        var body = JSONObject()
        if !registryIDs.isEmpty { body["registryIds"] = .array(registryIDs.map { .string($0) }) }
        let response = try await signedJSON(url: endpoint("ECR", region: region, env), target: "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
                                            body: GoJSONWriter.compact(.object(body)), credentials: resolved.credentials, region: region, service: "ecr",
                                            transport: transport, what: "ECR GetAuthorizationToken")
        let what = "ECR GetAuthorizationToken"
        guard let v = try? JSONParser.parse(response.body), case .array(let items)? = v["authorizationData"], !items.isEmpty else {
            throw KubeError(message: "\(what): the answer holds no authorizationData")
        }
        var auths: [String: RegistryCredential] = [:]
        var expiry = Double.infinity
        for item in items {
            guard let token = item["authorizationToken"]?.stringValue, let endpoint = item["proxyEndpoint"]?.stringValue,
                  let decoded = Base64.decode(token), let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else {
                throw KubeError(message: "\(what): an authorizationData entry is not a token and proxyEndpoint")
            }
            // The registry key is the proxy endpoint's host (and port, if it has one).
            let url = URLComponents(string: endpoint)
            let host = url?.host.map { h in url?.port.map { "\(h):\($0)" } ?? h } ?? endpoint
            auths[host] = RegistryCredential(username: String(decoding: decoded[..<colon], as: UTF8.self),
                                             password: String(decoding: decoded[(colon + 1)...], as: UTF8.self))
            if case .number(let n)? = item["expiresAt"], let t = Double(n) { expiry = min(expiry, t) }
        }
        let at = now?() ?? Date().timeIntervalSince1970
        let lifetime: Duration = expiry.isFinite ? .milliseconds(Int64(((expiry - at) * 1000).rounded(.down))) : .seconds(12 * 3600)
        return (MintedCredential(auths: auths, lifetime: lifetime), resolved.source)
    }

    /// A JSON 1.1 call (`X-Amz-Target`), signed.
    static func signedJSON(url: String, target: String, body: [UInt8], credentials: SigV4.Credentials, region: String, service: String,
                           transport: CurlTransport, what: String) async throws(KubeError) -> HTTPResponse {
        guard let c = URLComponents(string: url), let host = c.host, c.scheme == "https" || c.scheme == "http" else {
            throw KubeError(message: "\(what): the endpoint \(url) is not an http(s) URL")
        }
        let authority = c.port.map { "\(host):\($0)" } ?? host
        let path = c.percentEncodedPath.isEmpty ? "/" : c.percentEncodedPath
        let amzDate = SigV4.amzDate(Int64(Date().timeIntervalSince1970))
        var headers: [(name: String, value: String)] = [("Host", authority), ("Content-Type", "application/x-amz-json-1.1"),
                                                        ("X-Amz-Date", amzDate), ("X-Amz-Target", target)]
        let signature: SigV4.Signature
        do throws(CryptoError) {
            signature = try SigV4.sign(method: "POST", path: path, query: c.percentEncodedQuery ?? "", headers: headers, body: body,
                                       credentials: credentials, region: region, service: service, amzDate: amzDate)
        } catch {
            throw KubeError(message: "\(what): signing failed: \(error)")
        }
        headers += signature.headers
        let response = try await send(HTTPRequest(method: "POST", url: url, headers: headers, body: body, timeout: timeout), transport, what: what)
        guard response.status == 200 else { throw apiError(what, response) }
        return response
    }

    static func send(_ request: HTTPRequest, _ transport: CurlTransport, what: String) async throws(KubeError) -> HTTPResponse {
        do {
            return try await transport.send(request)
        } catch {
            throw KubeError(message: "\(what): \(request.method) \(Transfer.redactedURL(request.url)): \((error as? TransportError)?.message ?? "\(error)")")
        }
    }

    /// An AWS error answer as `CODE: message` (JSON `__type`/`code` and `message`, the XML `Code` and `Message` of
    /// the query protocols, or the `x-amzn-ErrorType` header), the message redacted and bounded.
    static func apiError(_ what: String, _ response: HTTPResponse) -> KubeError {
        let text = String(decoding: response.body.prefix(64 << 10), as: UTF8.self)
        var code: String?
        var message: String?
        if let v = try? JSONParser.parse(response.body) {
            code = (v["__type"]?.stringValue ?? v["code"]?.stringValue ?? v["Code"]?.stringValue).map { t in t.split(separator: "#").last.map(String.init) ?? t }
            message = v["message"]?.stringValue ?? v["Message"]?.stringValue
        } else if text.contains("<Code>") {
            code = xmlValue(text, "Code")
            message = xmlValue(text, "Message")
        }
        if code == nil, let h = response.header("x-amzn-ErrorType") { code = h.split(separator: ":").first.map(String.init) }
        let detail = message.map { ": " + ExecLimits.redactedLine(Array($0.utf8)) } ?? ""
        return KubeError(message: "\(what): HTTP \(response.status) \(code ?? "error")\(detail)", httpStatus: response.status)
    }

    /// The text of the first `<name>…</name>` element (XML escapes of the five predefined entities undone).
    static func xmlValue(_ xml: String, _ name: String) -> String? {
        guard let open = xml.range(of: "<\(name)>"), let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex) else { return nil }
        return String(xml[open.upperBound..<close.lowerBound]).replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'").replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// The subset of INI the AWS shared files use: `[section]` headers, `key = value` lines, `#`/`;` comments;
/// indented lines (nested `services` settings) are skipped.
enum INI {
    static func section(_ path: String, _ name: String) -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var current: String?
        var out: [String: String]?
        for raw in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                current = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                if current == name && out == nil { out = [:] }
                continue
            }
            guard current == name, raw.first != " ", raw.first != "\t", let eq = line.firstIndex(of: "=") else { continue }
            out?[line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        return out
    }
}
