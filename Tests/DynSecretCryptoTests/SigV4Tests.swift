import DynSecretCore
import DynSecretCrypto
import Foundation
import Testing

/// The signer against the AWS SigV4 test suite (Vectors/sigv4.json: the published aws-sig-v4-test-suite cases, as
/// data): canonical request, string to sign and Authorization byte for byte.
struct SigV4Tests {
    struct Case {
        var name, method, path, query, body: String
        var headers: [(String, String)]
        var canonicalRequest, stringToSign: String?
        var authorization: String
    }

    static let vectors: (credentials: SigV4.Credentials, region: String, service: String, date: String, cases: [Case]) = {
        let root = try! JSONParser.parse(Array(try! Data(contentsOf: testSourceDirectory.appendingPathComponent("Vectors/sigv4.json"))))
        let c = root["credentials"]!
        let cases = root["cases"]!.arrayValue!.map { v in
            Case(name: v["name"]!.stringValue!, method: v["method"]!.stringValue!, path: v["path"]!.stringValue!, query: v["query"]!.stringValue!,
                 body: v["body"]!.stringValue!,
                 headers: v["headers"]!.arrayValue!.map { ($0.arrayValue![0].stringValue!, $0.arrayValue![1].stringValue!) },
                 canonicalRequest: v["canonicalRequest"]?.stringValue, stringToSign: v["stringToSign"]?.stringValue,
                 authorization: v["authorization"]!.stringValue!)
        }
        return (SigV4.Credentials(accessKeyID: c["accessKeyId"]!.stringValue!, secretAccessKey: c["secretAccessKey"]!.stringValue!),
                root["region"]!.stringValue!, root["service"]!.stringValue!, root["date"]!.stringValue!, cases)
    }()

    @Test func theAWSTestSuite() throws {
        let v = Self.vectors
        #expect(v.cases.count >= 30)
        for c in v.cases {
            let s = try SigV4.sign(method: c.method, path: c.path, query: c.query, headers: c.headers.map { (name: $0.0, value: $0.1) },
                                   body: Array(c.body.utf8), credentials: v.credentials, region: v.region, service: v.service, amzDate: v.date)
            if let cr = c.canonicalRequest { #expect(s.canonicalRequest == cr, "\(c.name)") }
            if let sts = c.stringToSign { #expect(s.stringToSign == sts, "\(c.name)") }
            #expect(s.authorization == c.authorization, "\(c.name)")
            #expect(s.headers.map(\.name) == ["Authorization"])
        }
    }

    @Test func sessionCredentialsSignTheirToken() throws {
        // Given as credentials rather than as a header: the token is added, signed, and returned to send.
        let v = Self.vectors
        let before = try #require(v.cases.first { $0.name == "post-sts-token/post-sts-header-before" })
        let token = try #require(before.headers.first { $0.0 == "X-Amz-Security-Token" }?.1)
        var creds = v.credentials
        creds.sessionToken = token
        let s = try SigV4.sign(method: "POST", path: "/", query: "", headers: before.headers.filter { $0.0 != "X-Amz-Security-Token" }.map { (name: $0.0, value: $0.1) },
                               body: [], credentials: creds, region: v.region, service: v.service, amzDate: v.date)
        #expect(s.authorization == before.authorization)
        #expect(s.headers.map(\.name) == ["Authorization", "X-Amz-Security-Token"] && s.headers[1].value == token)
        #expect(!creds.description.contains(creds.secretAccessKey) && !creds.description.contains(token), "credentials never print their secrets")
        // A wrong secret gives another signature.
        creds.secretAccessKey += "x"
        let wrong = try SigV4.sign(method: "POST", path: "/", query: "", headers: before.headers.map { (name: $0.0, value: $0.1) },
                                   body: [], credentials: creds, region: v.region, service: v.service, amzDate: v.date)
        #expect(wrong.authorization != before.authorization)
    }

    @Test func amzDate() {
        #expect(SigV4.amzDate(1_440_938_160) == "20150830T123600Z")
        #expect(SigV4.amzDate(0) == "19700101T000000Z")
    }
}
