import DynSecretCore
import Foundation
import Testing

private let canary = "CANARY-pw-5e1f0c"

@Suite struct CreateRegistryTests {
    @Test func severalServersOneSecret() async throws {
        let r = await dynsecret(["create-registry", "regcred", "-o", "json", "--username", "bot", "--password-stdin",
                                 "--server", "docker.io", "--server", "ghcr.io", "--server", "nvcr.io", "--server", "ghcr.io"], stdin: "pw\n")
        #expect(r.code == 0)
        let config = try dockerConfig(ofJSON: r.stdout)
        #expect(config["auths"]?.objectValue?.keys == ["ghcr.io", "https://index.docker.io/v1/", "nvcr.io"])
        #expect(config["auths"]?["nvcr.io"]?["password"] == .string("pw"))
    }

    @Test(arguments: ["docker.io", "index.docker.io", "registry-1.docker.io", "https://docker.io/", "http://registry-1.docker.io"])
    func dockerHubNormalized(server: String) async throws {
        let r = await dynsecret(["create-registry", "hub", "-o", "json", "--username", "u", "--password-stdin", "--server", server], stdin: "p")
        #expect(r.code == 0)
        #expect(try dockerConfig(ofJSON: r.stdout)["auths"]?.objectValue?.keys == ["https://index.docker.io/v1/"])
    }

    @Test func passwordFileAndTrailingNewline() async throws {
        let tmp = try TempDir()
        let file = try tmp.file("pw", "line1\r\n")
        let r = await dynsecret(["create-registry", "x", "-o", "json", "--username", "u", "--password-file", file])
        #expect(r.code == 0)
        #expect(try dockerConfig(ofJSON: r.stdout)["auths"]?["https://index.docker.io/v1/"]?["password"] == .string("line1"))
    }

    @Test func passwordFlagWarns() async {
        let r = await dynsecret(["create-registry", "x", "--username", "u", "--password", canary])
        #expect(r.code == 0)
        #expect(r.stderr.hasPrefix("warning: --password"))
        #expect(!r.stderr.contains(canary) && !r.stdout.contains(canary))
    }

    @Test func yamlIsDefault() async {
        let r = await dynsecret(["create-registry", "x", "-n", "ns", "--username", "u", "--password-stdin"], stdin: "p")
        #expect(r.stdout.hasPrefix("apiVersion: v1\ndata:\n  .dockerconfigjson: "))
        #expect(r.stdout.hasSuffix("metadata:\n  creationTimestamp: null\n  name: x\n  namespace: ns\ntype: kubernetes.io/dockerconfigjson\n"))
    }

    @Test func fromDockerConfig() async throws {
        let tmp = try TempDir()
        let cfg = try tmp.file("config.json", #"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOmh1YnB3"},"ghcr.io":{"auth":"Z2g6Z2hwdw=="},"quay.io":{}},"credsStore":"desktop"}"#)
        let all = await dynsecret(["create-registry", "x", "-o", "json", "--from-docker-config", cfg])
        #expect(all.code == 0, "\(all.stderr)")
        #expect(try dockerConfig(ofJSON: all.stdout)["auths"]?.objectValue?.keys == ["ghcr.io", "https://index.docker.io/v1/"])
        #expect(all.stderr.contains("skipped quay.io"))
        #expect(!all.stderr.contains("hubpw") && !all.stderr.contains("ghpw"))

        let one = await dynsecret(["create-registry", "x", "-o", "json", "--from-docker-config", cfg, "--server", "ghcr.io"])
        #expect(try dockerConfig(ofJSON: one.stdout)["auths"]?.objectValue?.keys == ["ghcr.io"])
        #expect(try dockerConfig(ofJSON: one.stdout)["auths"]?["ghcr.io"]?["username"] == .string("gh"))

        let missing = await dynsecret(["create-registry", "x", "--from-docker-config", cfg, "--server", "nvcr.io"])
        #expect(missing.code == 2 && missing.stdout.isEmpty && missing.stderr.contains("nvcr.io"))

        let plus = await dynsecret(["create-registry", "x", "-o", "json", "--from-docker-config", cfg, "--server", "nvcr.io",
                                    "--username", "$oauthtoken", "--password-stdin"], stdin: "k")
        #expect(try dockerConfig(ofJSON: plus.stdout)["auths"]?.objectValue?.keys == ["ghcr.io", "https://index.docker.io/v1/", "nvcr.io"])
    }

    @Test func mergeIntoAddsAndReplaces() async throws {
        let tmp = try TempDir()
        let first = await dynsecret(["create-registry", "regcred", "-n", "team-a", "--username", "u", "--password-stdin", "--server", "ghcr.io", "--server", "nvcr.io"], stdin: "old")
        var yaml = first.stdout
        yaml = yaml.replacingOccurrences(of: "  name: regcred\n", with: "  labels:\n    app: web\n  name: regcred\n")
        let file = try tmp.file("regcred.yaml", yaml)
        let merged = await dynsecret(["create-registry", "--merge-into", file, "-o", "json", "--server", "nvcr.io", "--username", "v", "--password-stdin"], stdin: "new")
        #expect(merged.code == 0, "\(merged.stderr)")
        let config = try dockerConfig(ofJSON: merged.stdout)
        #expect(config["auths"]?["ghcr.io"]?["password"] == .string("old"))
        #expect(config["auths"]?["nvcr.io"]?["password"] == .string("new"))
        let secret = try Secret.decode(try JSONParser.parse(merged.stdout)).secret
        #expect(secret.metadata.labels == ["app": "web"] && secret.metadata.namespace == "team-a" && secret.metadata.name == "regcred")

        let renamed = await dynsecret(["create-registry", "other", "--merge-into", file, "--username", "v", "--password-stdin"], stdin: "new")
        #expect(renamed.code == 2 && renamed.stdout.isEmpty)
    }

    /// A merge target holding an entry the kubelet cannot decode (numeric username and password, an `auth` that is
    /// not base64), or one so large that the merged Secret passes the API server's 1 MiB: refused with the finding,
    /// exit 1, nothing printed, and the password never shown.
    @Test func mergeIntoRefusesWhatWouldNotWork() async throws {
        let tmp = try TempDir()
        func secretYAML(_ config: String) -> String {
            "apiVersion: v1\nkind: Secret\nmetadata: {name: reg, namespace: ns}\ntype: kubernetes.io/dockerconfigjson\n" +
                "data:\n  .dockerconfigjson: \(Base64.encode(Array(config.utf8)))\n"
        }
        let bad = try tmp.file("bad.yaml", secretYAML(#"{"auths":{"bad.example":{"username":123,"password":456,"auth":"not base64!!"}}}"#))
        let r = await dynsecret(["create-registry", "--merge-into", bad, "--server", "ok.example", "--username", "u", "--password-stdin"], stdin: canary)
        #expect(r.code == 1 && r.stdout.isEmpty, "exit \(r.code): \(r.stderr)")
        #expect(r.stderr.contains("auths[bad.example]") && r.stderr.contains("pull-secret-malformed"), "\(r.stderr)")
        #expect(!r.stderr.contains(canary))

        let padding = String(repeating: "x", count: 1_600_000)
        let big = try tmp.file("big.yaml", secretYAML(#"{"auths":{"a.example":{"auth":"dTpw"}},"pad":"\#(padding)"}"#))
        let r2 = await dynsecret(["create-registry", "--merge-into", big, "--server", "ok.example", "--username", "u", "--password-stdin"], stdin: canary)
        #expect(r2.code == 1 && r2.stdout.isEmpty, "exit \(r2.code): \(r2.stderr.prefix(300))")
        #expect(r2.stderr.contains("secret-size"), "\(r2.stderr.prefix(300))")
    }

    @Test func sharedPasswordFileGetsAWarning() async throws {
        let tmp = try TempDir()
        let open = try tmp.file("pw-open", canary + "\n", mode: 0o644)
        let r = await dynsecret(["create-registry", "x", "--server", "r.example", "--username", "u", "--password-file", open])
        #expect(r.code == 0 && r.stderr.contains("readable by everyone (mode 0644)") && r.stderr.contains("chmod 600"), "\(r.stderr)")
        #expect(!r.stderr.contains(canary))
        let closed = try tmp.file("pw-closed", canary + "\n", mode: 0o600)
        let q = await dynsecret(["create-registry", "x", "--server", "r.example", "--username", "u", "--password-file", closed])
        #expect(q.code == 0 && !q.stderr.contains("readable by"), "\(q.stderr)")
    }

    @Test func helpAndVersion() async {
        let help = await dynsecret(["create-registry", "--help"])
        #expect(help.code == 0 && help.stdout.contains("--password-stdin"))
        let version = await dynsecret(["version"])
        #expect(version.code == 0 && version.stdout.contains("OpenSSL 3") && version.stdout.contains("libcurl"))
    }

    /// `dynsecret --help` groups the commands by task, `version` last: pinned section by section.
    @Test func topLevelHelpIsGroupedByTask() async {
        let help = await dynsecret(["--help"])
        #expect(help.code == 0)
        var sections: [(String, [String])] = []
        for line in help.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasSuffix("SUBCOMMANDS:") { sections.append((String(line.dropLast(":".count)), [])) }
            else if line.hasPrefix("  "), !line.hasPrefix("   "), let first = line.split(separator: " ").first, !sections.isEmpty, first != "See" {
                sections[sections.count - 1].1.append(String(first))
            }
        }
        #expect(sections.map(\.0) == ["REGISTRY CREDENTIALS SUBCOMMANDS", "CHECKS SUBCOMMANDS", "REPLICATION SUBCOMMANDS", "AT REST SUBCOMMANDS", "OTHER SUBCOMMANDS"])
        #expect(sections.map(\.1) == [["create-registry", "verify", "credentials"], ["validate", "index", "which", "webhook"], ["replicate", "status", "controller", "migrate", "cluster"],
                                       ["keys", "encrypt", "decrypt", "store"], ["version"]], "\(help.stdout)")
    }
}

/// Bad input: exit 2, one line on stderr naming the problem, nothing on stdout, and never the password.
@Suite struct CreateRegistryBadInputTests {
    struct Bad: CustomTestStringConvertible, Sendable {
        var args: [String]
        var stdin = canary
        var expect: String
        var testDescription: String { expect }
    }

    /// Fixture files, referred to in `args` as `@name`; written fresh for every case.
    static let fixtures: [String: String] = [
        "credsStoreOnly": #"{"auths":{"ghcr.io":{}},"credsStore":"desktop"}"#,
        "helpersOnly": #"{"credHelpers":{"gcr.io":"gcloud"}}"#,
        "malformed": "apiVersion: v1\nkind: Secret\nmetadata: [\n",
        "wrongType": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ntype: Opaque\ndata:\n  a: eA==\n",
        "twoDocs": "kind: Secret\n---\nkind: Secret\n",
        "badPayload": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: \(Base64.encode(Array(#"{"auths":[]}"#.utf8)))\n",
        "empty": "",
        "garbled": "{\"auths\":{\"ghcr.io\":{\"auth\":\"x\"}}, \(canary)}",
        "pullSecret": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: \(Base64.encode(Array(#"{"auths":{}}"#.utf8)))\n",
    ]

    static let cases: [Bad] = [
        Bad(args: ["create-registry", "--username", "u", "--password-stdin"], expect: "NAME is required"),
        Bad(args: ["create-registry", "Bad_Name", "--username", "u", "--password-stdin"], expect: "metadata.name: Invalid value: \"Bad_Name\""),
        Bad(args: ["create-registry", "x", "-n", "Team_A", "--username", "u", "--password-stdin"], expect: "metadata.namespace: Invalid value"),
        Bad(args: ["create-registry", "x", "--password-stdin"], expect: "--username is required"),
        Bad(args: ["create-registry", "x", "--username", "u"], expect: "a password is required"),
        Bad(args: ["create-registry", "x"], expect: "--username and a password"),
        Bad(args: ["create-registry", "x", "--username", "u", "--password-stdin"], stdin: "", expect: "--password-stdin: no password"),
        Bad(args: ["create-registry", "x", "--username", "u", "--password-stdin"], stdin: "\n", expect: "--password-stdin: no password"),
        Bad(args: ["create-registry", "x", "--username", "u:v", "--password-stdin"], expect: "must not contain ':'"),
        Bad(args: ["create-registry", "x", "--username", "u", "--password-file", "/nonexistent/pw"], expect: "/nonexistent/pw: no such file"),
        Bad(args: ["create-registry", "x", "--username", "u", "--password-file", "@"], expect: "is a directory"),
        Bad(args: ["create-registry", "x", "--username", "u", "--password-file", "@empty"], expect: "no password"),
        Bad(args: ["create-registry", "x", "--username", "u", "--password-stdin", "--password", canary], expect: "give the password only once"),
        Bad(args: ["create-registry", "x", "--username", "u", "--password-stdin", "--server", "bad server"], expect: "invalid registry server"),
        Bad(args: ["create-registry", "x", "--username", "u", "--password-stdin", "-o", "xml"], expect: "xml"),
        Bad(args: ["create-registry", "x", "--from-docker-config", "@credsStoreOnly"], expect: "credsStore"),
        Bad(args: ["create-registry", "x", "--from-docker-config", "@helpersOnly"], expect: "credHelpers"),
        Bad(args: ["create-registry", "x", "--from-docker-config", "/nonexistent.json"], expect: "no such file"),
        Bad(args: ["create-registry", "--merge-into", "@malformed", "--username", "u", "--password-stdin"], expect: "malformed: document 1 (line"),
        Bad(args: ["create-registry", "--merge-into", "@wrongType", "--username", "u", "--password-stdin"], expect: "type: Secret type is \"Opaque\""),
        Bad(args: ["create-registry", "--merge-into", "@twoDocs", "--username", "u", "--password-stdin"], expect: "exactly one Secret"),
        Bad(args: ["create-registry", "--merge-into", "@badPayload", "--username", "u", "--password-stdin"], expect: "data[.dockerconfigjson].auths: expected an object"),
        Bad(args: ["create-registry", "--merge-into", "@pullSecret"], expect: "needs the credentials"),
        Bad(args: ["create-registry", "x", "y", "--username", "u", "--password", canary], expect: "Unexpected argument"),
        Bad(args: ["create-registry", "x", "--usernme", "u", "--password=" + canary], expect: "Unknown option"),
        Bad(args: ["create-registry", "x", "--username", "u", "--password-stdin", "--server", "u:\(canary)@ghcr.io"], expect: "credentials (USER:PASSWORD@)"),
        Bad(args: ["create-registry", "x", "--username", "u", "--password-file", "/proc/self/mem"], expect: "/proc/self/mem: cannot read"),
        Bad(args: ["create-registry", "x", "--from-docker-config", "@garbled"], expect: "not valid JSON"),
    ]

    @Test(arguments: cases)
    func rejected(bad: Bad) async throws {
        let tmp = try TempDir()
        for (name, content) in Self.fixtures { _ = try tmp.file(name, content) }
        let args = bad.args.map { $0.hasPrefix("@") ? tmp.url.appendingPathComponent(String($0.dropFirst())).path : $0 }
        let r = await dynsecret(args, stdin: bad.stdin)
        #expect(r.code == 2)
        #expect(r.stdout.isEmpty)
        let errorLines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        #expect(errorLines.count == 1, "\(r.stderr)")
        #expect(r.stderr.contains(bad.expect), "\(r.stderr)")
        #expect(!r.stderr.contains(canary) && !r.stdout.contains(canary))
    }

    @Test(.enabled(if: getuid() != 0, "running as root: permissions do not stop reads"))
    func unreadablePasswordFile() async throws {
        let tmp = try TempDir()
        let unreadable = try tmp.file("unreadable", canary, mode: 0o000)
        let r = await dynsecret(["create-registry", "x", "--username", "u", "--password-file", unreadable])
        #expect(r.code == 2 && r.stdout.isEmpty && r.stderr.contains("permission denied"))
    }
}

/// The built binary as a user runs it: real exit codes and streams.
@Suite struct BinaryTests {
    @Test(.enabled(if: dynsecretBinary != nil, "the dynsecret binary was not found next to the tests"))
    func realProcess() throws {
        let ok = try runProcess(dynsecretBinary!, ["create-registry", "regcred", "--server", "ghcr.io", "--username", "u", "--password-stdin"], stdin: canary + "\n")
        #expect(ok.code == 0 && ok.stdout.contains("kind: Secret") && ok.stderr.isEmpty)
        #expect(!ok.stdout.contains(canary))
        let bad = try runProcess(dynsecretBinary!, ["create-registry", "Bad_Name", "--username", "u", "--password-stdin"], stdin: canary)
        #expect(bad.code == 2 && bad.stdout.isEmpty && bad.stderr.hasPrefix("error: Secret \"Bad_Name\" is invalid"))
        let empty = try runProcess(dynsecretBinary!, ["create-registry", "x", "--username", "u", "--password-stdin"], stdin: "")
        #expect(empty.code == 2 && empty.stdout.isEmpty)
    }
}
