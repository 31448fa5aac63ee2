import DynSecretCore
import Foundation
import Testing

/// One `create-registry` input, given to both dynsecret and kubectl.
struct CompatCase: CustomTestStringConvertible, Sendable {
    var name = "regcred"
    var server: String?
    var username = "alice"
    var password = "s3cret"
    var email: String?
    var namespace: String?
    /// How dynsecret receives the password.
    var via: Via = .stdin

    enum Via: Sendable { case stdin, file, flag }

    var testDescription: String {
        "\(name) server=\(server ?? "default") user=\(username) email=\(email ?? "-") ns=\(namespace ?? "-") via=\(via)"
    }

    var kubectlArgs: [String] {
        var a = ["create", "secret", "docker-registry", name, "--dry-run=client", "-o", "json",
                 "--docker-username=\(username)", "--docker-password=\(password)"]
        if let server { a.append("--docker-server=\(server)") }
        if let email { a.append("--docker-email=\(email)") }
        if let namespace { a += ["-n", namespace] }
        return a
    }

    func dynsecretArgs(passwordFile: String) -> [String] {
        var a = ["create-registry", name, "-o", "json", "--username", username]
        if let server { a += ["--server", server] }
        if let email { a += ["--email", email] }
        if let namespace { a += ["-n", namespace] }
        switch via {
        case .stdin: a.append("--password-stdin")
        case .file: a += ["--password-file", passwordFile]
        case .flag: a += ["--password", password]
        }
        return a
    }
}

let compatCases: [CompatCase] = [
    CompatCase(server: "registry.example.com", email: "alice@example.com"),                       // A1
    CompatCase(server: "registry.example.com"),                                                   // A2
    CompatCase(),                                                                                 // A3 default server
    CompatCase(server: "https://registry.example.com:5000/v2/"),                                  // A4
    CompatCase(server: "http://localhost:5000"),                                                  // A5
    CompatCase(password: "pässwörd✓日本"),                                                        // A6
    CompatCase(password: "pa:ss:word"),                                                           // A7
    CompatCase(password: "<>&\"\\x"),                                                             // A9
    CompatCase(username: "ålice", password: "x"),                                                 // A10
    CompatCase(name: "pull.secret-1", server: "ghcr.io", namespace: "team-a"),
    CompatCase(server: "nvcr.io", username: "$oauthtoken", password: "nvapi-AbC123_-xyz", namespace: "inference"),
    CompatCase(server: "registry.example.com:443/team/project", email: "ops+ci@example.com"),
    CompatCase(server: "https://123456789012.dkr.ecr.us-east-1.amazonaws.com", username: "AWS", password: String(repeating: "eyJwYXlsb2Fk", count: 90)),
    CompatCase(server: "*.azurecr.io", password: "p@ss w0rd with spaces", via: .file),
    CompatCase(server: "quay.io", username: "robot+ci", password: "tab\there", via: .flag),
    CompatCase(server: "[::1]:5000", password: "'single' `back` $dollar"),
    CompatCase(server: "registry.local", email: "<alice>&\"co\"@example.com"),
    CompatCase(server: "gcr.io", username: "_json_key", password: #"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}"#, via: .file),
    CompatCase(name: "a", server: "HTTPS://Registry.Example.COM", namespace: "x"),
    CompatCase(name: String(repeating: "r", count: 253), server: "r.io"),
    CompatCase(server: "registry.example.com", password: "emoji 😀 and \u{2028} separator"),
    CompatCase(server: "https://registry.example.com/v1/", username: "u", password: "p=", email: "", namespace: "default"),
    CompatCase(server: "k8s.gcr.io/path/", password: "ends with backslash\\", via: .flag),
]

@Suite struct KubectlCompatibilityTests {
    @Test(.enabled(if: kubectlPath != nil, "kubectl is not installed: the comparison with kubectl is skipped"),
          arguments: compatCases)
    func sameSecretAsKubectl(c: CompatCase) async throws {
        let tmp = try TempDir()
        let passwordFile = try tmp.file("password", c.password + "\n")
        let expected = try runProcess(kubectlPath!, c.kubectlArgs)
        #expect(expected.code == 0, "kubectl failed: \(expected.stderr)")
        let actual = await dynsecret(c.dynsecretArgs(passwordFile: passwordFile), stdin: c.password + "\n")
        #expect(actual.code == 0, "\(actual.stderr)")

        let k = try JSONParser.parse(expected.stdout)
        let d = try JSONParser.parse(actual.stdout)
        for field in ["kind", "apiVersion", "type", "metadata"] {
            #expect(d[field] == k[field], "\(field)")
        }
        #expect(d["data"]?.objectValue?.keys == k["data"]?.objectValue?.keys)
        #expect(try dockerConfig(ofJSON: actual.stdout) == dockerConfig(ofJSON: expected.stdout))
        // Stronger than required: the whole output is the same bytes.
        #expect(actual.stdout == expected.stdout)
    }

    @Test func atLeastTwentyInputs() {
        #expect(compatCases.count >= 20)
    }
}
