internal import DynSecretCore
internal import DynSecretCrypto
internal import Foundation

/// Google OAuth 2.0 access tokens for Artifact Registry and Container Registry, found as Google's client libraries
/// find Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS` naming a service-account key (a JWT bearer
/// grant, RFC 7523, signed RS256 with OpenSSL) or an `external_account` (workload identity federation: an STS token
/// exchange, RFC 8693, optionally impersonating a service account); otherwise the metadata server (GKE Workload
/// Identity, Compute Engine; `GCE_METADATA_HOST` overrides its address).
public enum GoogleAuth {
    /// The scope every token is asked for.
    public static let scope = "https://www.googleapis.com/auth/cloud-platform"
    static let defaultTokenURI = "https://oauth2.googleapis.com/token"
    static let timeout: Duration = .seconds(10)

    /// An access token, how long it is valid, and where it came from.
    public struct Token: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        public var accessToken: String
        public var lifetime: Duration
        public var source: String

        /// Never the token.
        public var description: String { "Token(from \(source), lifetime \(lifetime), access token redacted)" }
        public var debugDescription: String { description }
        public var customMirror: Mirror { Mirror(self, children: ["description": description]) }
    }

    /// The access token of the Application Default Credentials in `env`.
    public static func accessToken(_ env: AWS.Environment = AWS.Environment(), transport: CurlTransport,
                                   now: (@Sendable () -> Double)? = nil) async throws(KubeError) -> Token {
        let at = now?() ?? Date().timeIntervalSince1970
        if let path = env["GOOGLE_APPLICATION_CREDENTIALS"] {
            guard let data = FileManager.default.contents(atPath: env.expand(path)) else {
                throw KubeError(message: "Google credentials: cannot read GOOGLE_APPLICATION_CREDENTIALS file \(path)")
            }
            guard let file = try? JSONParser.parse(Array(data)), case .object = file else {
                throw KubeError(message: "Google credentials: \(path) is not a JSON credentials file")
            }
            switch file["type"]?.stringValue {
            case "service_account": return try await serviceAccount(file, path: path, transport: transport, now: at)
            case "external_account": return try await externalAccount(file, path: path, env, transport: transport, now: at)
            case let t:
                throw KubeError(message: "Google credentials: \(path): type \(KubeNames.goQuote(t ?? "")) is not supported (service_account, external_account)")
            }
        }
        return try await metadataServer(env, transport: transport)
    }

    /// A JWT bearer grant: `{iss: client_email, scope, aud: token_uri, iat, exp: iat+3600}` signed with the key.
    static func serviceAccount(_ file: JSONValue, path: String, transport: CurlTransport, now: Double) async throws(KubeError) -> Token {
        guard let email = file["client_email"]?.stringValue, let pem = file["private_key"]?.stringValue else {
            throw KubeError(message: "Google credentials: \(path): a service account key needs client_email and private_key")
        }
        let tokenURI = file["token_uri"]?.stringValue ?? defaultTokenURI
        let iat = Int64(now.rounded(.down))
        var header = JSONObject([("alg", .string("RS256")), ("typ", .string("JWT"))])
        if let kid = file["private_key_id"]?.stringValue { header["kid"] = .string(kid) }
        let claims = JSONObject([("iss", .string(email)), ("scope", .string(scope)), ("aud", .string(tokenURI)),
                                 ("iat", .number(String(iat))), ("exp", .number(String(iat + 3600)))])
        let signingInput = base64URL(GoJSONWriter.compact(.object(header))) + "." + base64URL(GoJSONWriter.compact(.object(claims)))
        let signature: [UInt8]
        do throws(CryptoError) {
            signature = try PrivateKey(pem: Array(pem.utf8)).signRS256(Array(signingInput.utf8))
        } catch {
            throw KubeError(message: "Google credentials: \(path): the private key cannot sign: \(error.operation)")
        }
        let assertion = signingInput + "." + base64URL(signature)
        let body = form([("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion)])
        let response = try await post(tokenURI, body: body, contentType: "application/x-www-form-urlencoded", transport: transport, what: "Google token endpoint")
        return try token(response, accessField: "access_token", what: "Google token endpoint", source: "service account \(email)", now: now)
    }

    /// Workload identity federation: the subject token (a file or a URL, text or JSON) exchanged at `token_url`,
    /// then, with `service_account_impersonation_url`, a service account's token generated with it.
    static func externalAccount(_ file: JSONValue, path: String, _ env: AWS.Environment, transport: CurlTransport, now: Double) async throws(KubeError) -> Token {
        let what = "Google credentials: \(path)"
        guard let audience = file["audience"]?.stringValue, let subjectType = file["subject_token_type"]?.stringValue,
              let tokenURL = file["token_url"]?.stringValue, let source = file["credential_source"] else {
            throw KubeError(message: "\(what): an external_account needs audience, subject_token_type, token_url and credential_source")
        }
        var subject: [UInt8]
        if let f = source["file"]?.stringValue {
            guard let d = FileManager.default.contents(atPath: f) else { throw KubeError(message: "\(what): cannot read the credential_source file \(f)") }
            subject = Array(d)
        } else if let url = source["url"]?.stringValue {
            var headers: [(name: String, value: String)] = []
            if case .object(let h)? = source["headers"] { for m in h.members { if let v = m.value.stringValue { headers.append((m.key, v)) } } }
            let r = try await AWS.send(HTTPRequest(method: "GET", url: url, headers: headers, timeout: timeout), transport, what: "\(what): credential_source url")
            guard r.status == 200 else { throw KubeError(message: "\(what): credential_source url answered HTTP \(r.status)", httpStatus: r.status) }
            subject = r.body
        } else {
            throw KubeError(message: "\(what): only file and url credential sources are supported (not environment_id or executable)")
        }
        if source["format"]?["type"]?.stringValue == "json" {
            let field = source["format"]?["subject_token_field_name"]?.stringValue ?? ""
            guard let v = try? JSONParser.parse(subject), let t = v[field]?.stringValue else {
                throw KubeError(message: "\(what): the subject token is not JSON with field \(KubeNames.goQuote(field))")
            }
            subject = Array(t.utf8)
        }
        let subjectToken = String(decoding: subject, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !subjectToken.isEmpty else { throw KubeError(message: "\(what): the subject token is empty") }
        let body = form([("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"), ("audience", audience), ("scope", scope),
                         ("requested_token_type", "urn:ietf:params:oauth:token-type:access_token"), ("subject_token", subjectToken),
                         ("subject_token_type", subjectType)])
        let exchanged = try await post(tokenURL, body: body, contentType: "application/x-www-form-urlencoded", transport: transport, what: "Google STS")
        let federated = try token(exchanged, accessField: "access_token", what: "Google STS", source: "workload identity federation", now: now)
        guard let impersonate = file["service_account_impersonation_url"]?.stringValue else { return federated }
        let request = GoJSONWriter.compact(.object(JSONObject([("scope", .array([.string(scope)])), ("lifetime", .string("3600s"))])))
        let generated = try await post(impersonate, body: request, contentType: "application/json", bearer: federated.accessToken, transport: transport,
                                       what: "Google IAM generateAccessToken")
        guard let v = try? JSONParser.parse(generated.body), let access = v["accessToken"]?.stringValue, !access.isEmpty else {
            throw KubeError(message: "Google IAM generateAccessToken: the answer holds no accessToken")
        }
        let expiry = v["expireTime"]?.stringValue.flatMap(RFC3339.parse).map(Double.init) ?? now + 3600
        return Token(accessToken: access, lifetime: seconds(expiry - now), source: "workload identity federation, impersonating a service account")
    }

    /// The metadata server's token for the instance's (or the Kubernetes ServiceAccount's) Google service account.
    static func metadataServer(_ env: AWS.Environment, transport: CurlTransport) async throws(KubeError) -> Token {
        let host = env["GCE_METADATA_HOST"] ?? "metadata.google.internal"
        let url = "http://\(host)/computeMetadata/v1/instance/service-accounts/default/token"
        let what = "Google metadata server"
        let r = try await AWS.send(HTTPRequest(method: "GET", url: url, headers: [("Metadata-Flavor", "Google")], timeout: .seconds(3)), transport, what: what)
        guard r.header("Metadata-Flavor") == "Google" else {
            throw KubeError(message: "\(what): \(host) answered without Metadata-Flavor: Google (not a metadata server)")
        }
        return try token(r, accessField: "access_token", what: what, source: "metadata server", now: Date().timeIntervalSince1970)
    }

    static func post(_ url: String, body: [UInt8], contentType: String, bearer: String? = nil, transport: CurlTransport, what: String) async throws(KubeError) -> HTTPResponse {
        var headers: [(name: String, value: String)] = [("Content-Type", contentType), ("Accept", "application/json")]
        if let bearer { headers.append(("Authorization", "Bearer " + bearer)) }
        return try await AWS.send(HTTPRequest(method: "POST", url: url, headers: headers, body: body, timeout: timeout), transport, what: what)
    }

    /// `access_token` and `expires_in` of an OAuth answer, or the OAuth error (`error`, `error_description`).
    static func token(_ r: HTTPResponse, accessField: String, what: String, source: String, now: Double) throws(KubeError) -> Token {
        let v = try? JSONParser.parse(r.body)
        guard r.status == 200 else {
            let code = v?["error"]?.stringValue ?? v?["error"]?["status"]?.stringValue ?? "error"
            let description = v?["error_description"]?.stringValue ?? v?["error"]?["message"]?.stringValue
            let detail = description.map { ": " + ExecLimits.redactedLine(Array($0.utf8)) } ?? ""
            throw KubeError(message: "\(what): HTTP \(r.status) \(code)\(detail)", httpStatus: r.status)
        }
        guard let access = v?[accessField]?.stringValue, !access.isEmpty else { throw KubeError(message: "\(what): the answer holds no \(accessField)") }
        var lifetime: Double = 3600
        if case .number(let n)? = v?["expires_in"], let d = Double(n) { lifetime = d }
        return Token(accessToken: access, lifetime: seconds(lifetime), source: source)
    }

    static func seconds(_ d: Double) -> Duration { .milliseconds(Int64((d * 1000).rounded(.down))) }

    static func form(_ fields: [(String, String)]) -> [UInt8] {
        Array(fields.map { "\(SigV4.uriEncode($0.0))=\(SigV4.uriEncode($0.1))" }.joined(separator: "&").utf8)
    }

    /// base64url without padding (RFC 7515 §2).
    static func base64URL(_ bytes: [UInt8]) -> String {
        var s = Base64.encode(bytes)
        while s.hasSuffix("=") { s.removeLast() }
        return String(s.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
    }
}
