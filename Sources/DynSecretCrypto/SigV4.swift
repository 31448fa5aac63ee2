internal import DynSecretCore

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for the non-S3 services dynsecret calls (ECR, STS), on OpenSSL's
/// SHA-256 and HMAC-SHA256. Facts from the AWS documentation and its published test suite.
public enum SigV4 {
    /// Temporary or long-term AWS credentials. `description` never shows the secret key or the session token.
    public struct Credentials: Sendable, CustomStringConvertible {
        public var accessKeyID: String
        public var secretAccessKey: String
        public var sessionToken: String?

        public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.sessionToken = sessionToken
        }

        public var description: String { "AWS credentials \(accessKeyID) (secret redacted)" }
    }

    /// What was signed and how: the canonical request, the string to sign and the `Authorization` value.
    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var authorization: String
        /// The headers to add to the request: `Authorization`, and `X-Amz-Security-Token` for session credentials.
        public var headers: [(name: String, value: String)]
    }

    /// Signs a request. `path` and `query` are as sent on the wire; `headers` must already hold `Host` and
    /// `X-Amz-Date` (`amzDate`, `YYYYMMDD'T'HHMMSS'Z'`), and every one of them is signed. With session credentials the
    /// security token is signed too (added to the signed headers when the caller did not).
    public static func sign(method: String, path: String, query: String, headers: [(name: String, value: String)], body: [UInt8],
                            credentials: Credentials, region: String, service: String, amzDate: String) throws(CryptoError) -> Signature {
        var all = headers
        if let token = credentials.sessionToken, !all.contains(where: { $0.name.lowercased() == "x-amz-security-token" }) {
            all.append(("X-Amz-Security-Token", token))
        }
        // Canonical headers: lowercase names, values trimmed with inner runs of spaces collapsed, repeated names
        // joined with commas in request order, sorted by name.
        var byName: [String: [String]] = [:]
        var order: [String] = []
        for (n, v) in all {
            let name = n.lowercased()
            if byName[name] == nil { order.append(name) }
            byName[name, default: []].append(trimCollapse(v))
        }
        let names = order.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let canonicalHeaders = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let canonicalRequest = [method, canonicalURI(path), canonicalQuery(query), canonicalHeaders, signedHeaders, try SHA256.hex(body)]
            .joined(separator: "\n")
        let date = String(amzDate.prefix(8))
        let scope = "\(date)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, try SHA256.hex(Array(canonicalRequest.utf8))].joined(separator: "\n")
        var secret = Array(("AWS4" + credentials.secretAccessKey).utf8)
        var key = SecretBytes(consuming: &secret)
        for part in [date, region, service, "aws4_request"] {
            var next = try HMACSHA256.mac(key: key, message: Array(part.utf8))
            key = SecretBytes(consuming: &next)
        }
        let signature = hex(try HMACSHA256.mac(key: key, message: Array(stringToSign.utf8)))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        var added = [(name: "Authorization", value: authorization)]
        if let token = credentials.sessionToken, !headers.contains(where: { $0.name.lowercased() == "x-amz-security-token" }) {
            added.append(("X-Amz-Security-Token", token))
        }
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, authorization: authorization, headers: added)
    }

    /// `YYYYMMDD'T'HHMMSS'Z'` for a Unix time.
    public static func amzDate(_ seconds: Int64) -> String {
        RFC3339.format(seconds).filter { $0 != "-" && $0 != ":" }
    }

    /// The canonical URI of a non-S3 request: the path with `.` and `..` segments removed (RFC 3986 §5.2.4) and
    /// empty segments collapsed (a trailing `/` kept), then each segment URI-encoded (which encodes an escape already on the wire a second time, as the services expect).
    static func canonicalURI(_ path: String) -> String {
        guard !path.isEmpty else { return "/" }
        var out: [Substring] = []
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for (i, s) in segments.enumerated() {
            let last = i == segments.count - 1
            switch s {
            case "": if last { out.append("") }  // `//` collapses; a trailing `/` stays
            case ".": if last { out.append("") }
            case "..":
                if !out.isEmpty { out.removeLast() }
                if last { out.append("") }
            default: out.append(s)
            }
        }
        return "/" + out.map { uriEncode(String($0)) }.joined(separator: "/")
    }

    /// The canonical query string: each name and value decoded from the wire and URI-encoded again, sorted by name
    /// then value (by bytes); a parameter without `=` has an empty value.
    static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        var pairs: [(String, String)] = []
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let k = uriEncode(percentDecode(String(kv[0])))
            let v = kv.count > 1 ? uriEncode(percentDecode(String(kv[1]))) : ""
            pairs.append((k, v))
        }
        pairs.sort { a, b in
            a.0 != b.0 ? Array(a.0.utf8).lexicographicallyPrecedes(Array(b.0.utf8)) : Array(a.1.utf8).lexicographicallyPrecedes(Array(b.1.utf8))
        }
        return pairs.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// RFC 3986 encoding as SigV4 defines it: unreserved characters (`A-Z a-z 0-9 - _ . ~`) as they are, every other
    /// byte of the UTF-8 as `%XX` with upper-case hex.
    public static func uriEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let h = String(b, radix: 16, uppercase: true)
                out += "%" + (h.count == 1 ? "0" + h : h)
            }
        }
        return out
    }

    static func percentDecode(_ s: String) -> String {
        let bytes = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        func hexValue(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count, let h = hexValue(bytes[i + 1]), let l = hexValue(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func trimCollapse(_ v: String) -> String {
        var out = ""
        var space = false
        for c in v.unicodeScalars {
            if c == " " || c == "\t" || c == "\n" || c == "\r" {
                space = true
            } else {
                if space && !out.isEmpty { out += " " }
                space = false
                out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { b in
            let h = String(b, radix: 16)
            return h.count == 1 ? "0" + h : h
        }.joined()
    }
}
