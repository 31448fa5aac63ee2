import DynSecretCore
import Foundation
import KubeEmulator
import Testing

/// The installed kubectl as the conformance client: everything runs over TLS with bearer tokens.
@Suite(.enabled(if: kubectlBinary != nil && openssl != nil, "needs kubectl and openssl"), .serialized)
struct KubectlConformanceTests {
    @Test func getCreateAndAlreadyExists() async throws {
        let f = try await KubectlFixture()
        defer { Task { await f.emulator.stop() } }
        var r = try await f.kubectl(["get", "namespaces", "-o", "name"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").sorted() == ["namespace/default", "namespace/kube-node-lease", "namespace/kube-public", "namespace/kube-system"])

        r = try await f.kubectl(["create", "secret", "generic", "app", "--from-literal=user=alice", "--from-literal=pass=s3cr3t"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == "secret/app created\n")
        r = try await f.kubectl(["get", "secret", "app", "-o", "jsonpath={.type} {.data.user} {.data.pass}"])
        #expect(r.stdout == "Opaque \(Base64.encode(Array("alice".utf8))) \(Base64.encode(Array("s3cr3t".utf8)))")

        r = try await f.kubectl(["create", "secret", "generic", "app", "--from-literal=user=bob"])
        #expect(r.code == 1)
        #expect(r.stderr == "error: failed to create secret secrets \"app\" already exists\n")

        r = try await f.kubectl(["create", "secret", "docker-registry", "pull", "--docker-server=ghcr.io", "--docker-username=u", "--docker-password=p"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try await f.kubectl(["get", "secret", "pull", "-o", "jsonpath={.type}"])
        #expect(r.stdout == "kubernetes.io/dockerconfigjson")

        r = try await f.kubectl(["create", "namespace", "team-a"])
        #expect(r.stdout == "namespace/team-a created\n")
        r = try await f.kubectl(["create", "serviceaccount", "builder", "-n", "team-a"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try await f.kubectl(["get", "serviceaccounts", "-n", "team-a", "-o", "name"])
        #expect(r.stdout == "serviceaccount/builder\nserviceaccount/default\n")
        r = try await f.kubectl(["get", "namespace", "team-a", "-o", "jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name} {.status.phase}"])
        #expect(r.stdout == "team-a Active")

        r = try await f.kubectl(["get", "secret", "nope"])
        #expect(r.code == 1)
        #expect(r.stderr == "Error from server (NotFound): secrets \"nope\" not found\n")
    }

    @Test func applyTwicePatchLabelAndDelete() async throws {
        let f = try await KubectlFixture()
        defer { Task { await f.emulator.stop() } }
        let manifest = """
        apiVersion: v1
        kind: Secret
        metadata:
          name: web
          labels:
            tier: web
        data:
          user: YWxpY2U=

        """
        var r = try await f.kubectl(["apply", "-f", "-"], stdin: manifest)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == "secret/web created\n")
        r = try await f.kubectl(["apply", "-f", "-"], stdin: manifest)
        #expect(r.stdout == "secret/web unchanged\n", "\(r.stderr)")
        r = try await f.kubectl(["apply", "-f", "-"], stdin: manifest.replacingOccurrences(of: "YWxpY2U=", with: "Ym9i").replacingOccurrences(of: "    tier: web\n", with: ""))
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == "secret/web configured\n")
        r = try await f.kubectl(["get", "secret", "web", "-o", "jsonpath={.data.user} {.metadata.labels}"])
        // The label removed from the manifest is removed by the three-way strategic merge patch.
        #expect(r.stdout == "\(Base64.encode(Array("bob".utf8))) ")

        r = try await f.kubectl(["patch", "secret", "web", "--type", "merge", "-p", #"{"data":{"extra":"eA=="}}"#])
        #expect(r.stdout == "secret/web patched\n", "\(r.stderr)")
        r = try await f.kubectl(["label", "secret", "web", "env=prod"])
        #expect(r.stdout == "secret/web labeled\n", "\(r.stderr)")
        r = try await f.kubectl(["get", "secrets", "-l", "env=prod", "-o", "name"])
        #expect(r.stdout == "secret/web\n")
        r = try await f.kubectl(["get", "secrets", "-l", "env!=prod", "-o", "name"])
        #expect(r.stdout == "")
        r = try await f.kubectl(["label", "secret", "web", "env=dev"])
        #expect(r.code == 1)
        #expect(r.stderr == "error: 'env' already has a value (prod), and --overwrite is false\n")
        r = try await f.kubectl(["label", "secret", "web", "env-"])
        #expect(r.stdout == "secret/web unlabeled\n")
        r = try await f.kubectl(["get", "secret", "web", "-o", "jsonpath={.metadata.labels}"])
        #expect(r.stdout == "", "an emptied label map is not stored")
        r = try await f.kubectl(["patch", "secret", "web", "--type", "json", "-p", #"[{"op":"remove","path":"/data/extra"}]"#])
        #expect(r.stdout == "secret/web patched\n", "\(r.stderr)")
        r = try await f.kubectl(["delete", "secret", "web"])
        #expect(r.stdout == "secret \"web\" deleted\n", "\(r.stderr)")
        r = try await f.kubectl(["delete", "secret", "web"])
        #expect(r.code == 1)
        #expect(r.stderr == "Error from server (NotFound): secrets \"web\" not found\n")
    }

    @Test func fieldSelectors() async throws {
        let f = try await KubectlFixture()
        defer { Task { await f.emulator.stop() } }
        _ = try await f.kubectl(["create", "secret", "generic", "plain", "--from-literal=a=b"])
        _ = try await f.kubectl(["create", "secret", "docker-registry", "pull", "--docker-server=ghcr.io", "--docker-username=u", "--docker-password=p"])
        var r = try await f.kubectl(["get", "secrets", "--field-selector", "type=kubernetes.io/dockerconfigjson", "-o", "name"])
        #expect(r.stdout == "secret/pull\n", "\(r.stderr)")
        r = try await f.kubectl(["get", "secrets", "--field-selector", "metadata.name=plain", "-o", "name"])
        #expect(r.stdout == "secret/plain\n")
        r = try await f.kubectl(["get", "secrets", "-A", "--field-selector", "metadata.namespace=default,type!=Opaque", "-o", "name"])
        #expect(r.stdout == "secret/pull\n")
        r = try await f.kubectl(["get", "secrets", "--field-selector", "data.a=b"])
        #expect(r.code == 1)
        #expect(r.stderr.hasSuffix("field label not supported: data.a\n"))
    }

    @Test func invalidSecretsGet422WithServerWording() async throws {
        let f = try await KubectlFixture()
        defer { Task { await f.emulator.stop() } }
        let bad = """
        apiVersion: v1
        kind: Secret
        metadata:
          name: reg
        type: kubernetes.io/dockerconfigjson
        data:
          other: eA==

        """
        var r = try await f.kubectl(["create", "-f", "-"], stdin: bad)
        #expect(r.code == 1)
        #expect(r.stderr == "The Secret \"reg\" is invalid: data[.dockerconfigjson]: Required value\n")
        r = try await f.kubectl(["create", "-f", "-"], stdin: bad.replacingOccurrences(of: "name: reg", with: "name: Bad_Name").replacingOccurrences(of: "type: kubernetes.io/dockerconfigjson\n", with: ""))
        #expect(r.code == 1)
        #expect(r.stderr.hasPrefix("The Secret \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"))
        r = try await f.kubectl(["create", "-f", "-"], stdin: bad.replacingOccurrences(of: "type: kubernetes.io/dockerconfigjson", with: "type: kubernetes.io/tls"))
        #expect(r.stderr == "The Secret \"reg\" is invalid: \n* data[tls.crt]: Required value\n* data[tls.key]: Required value\n")
        // kubectl asks for strict field validation: unknown fields are a 400.
        r = try await f.kubectl(["create", "-f", "-"], stdin: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nspec: {}\n")
        #expect(r.code == 1)
        #expect(r.stderr == "Error from server (BadRequest): error when creating \"STDIN\": Secret in version \"v1\" cannot be handled as a Secret: strict decoding error: unknown field \"spec\"\n")
    }

    @Test func watchPrintsFirstEvents() async throws {
        let f = try await KubectlFixture()
        defer { Task { await f.emulator.stop() } }
        _ = try await f.kubectl(["create", "secret", "generic", "before", "--from-literal=a=b"])
        let path = try #require(kubectlBinary)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = ["--kubeconfig", f.kubeconfig, "get", "secrets", "--watch", "-o", "name", "--output-watch-events"]
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = f.dir.path
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        try await Task.sleep(for: .milliseconds(1500))
        var r = try await f.kubectl(["create", "secret", "generic", "during", "--from-literal=a=b"])
        #expect(r.code == 0)
        r = try await f.kubectl(["delete", "secret", "before"])
        #expect(r.code == 0)
        try await Task.sleep(for: .milliseconds(1500))
        p.terminate()
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        // The initial list, then the ADDED and DELETED events (kubectl's name printer shows no event type).
        #expect(text == "secret/before\nsecret/during\nsecret/before\n")
    }

    @Test func authenticationAndPermissions() async throws {
        let f = try await KubectlFixture()
        defer { Task { await f.emulator.stop() } }
        var r = try await f.kubectl(["get", "secrets"], config: "reader.kubeconfig")
        #expect(r.code == 0, "\(r.stderr)")
        r = try await f.kubectl(["create", "secret", "generic", "x", "--from-literal=a=b"], config: "reader.kubeconfig")
        #expect(r.code == 1)
        #expect(r.stderr == "error: failed to create secret secrets is forbidden: User \"reader\" cannot create resource \"secrets\" in API group \"\" in the namespace \"default\"\n")
        r = try await f.kubectl(["get", "secrets"], config: "wrong.kubeconfig")
        #expect(r.code == 1)
        #expect(r.stderr.contains("the server has asked for the client to provide credentials") || r.stderr.contains("Unauthorized"))
        #expect(f.emulator.counters()["unauthorized", default: 0] >= 1)
        #expect(f.emulator.counters()["reader create", default: 0] == 1)
    }

    @Test func serverSideTablesGiveKubectlsColumns() async throws {
        let f = try await KubectlFixture()
        defer { Task { await f.emulator.stop() } }
        _ = try await f.kubectl(["create", "secret", "generic", "two-keys", "--from-literal=a=b", "--from-literal=c=d"])
        _ = try await f.kubectl(["create", "secret", "docker-registry", "pull", "--docker-server=ghcr.io", "--docker-username=u", "--docker-password=p"])
        var r = try await f.kubectl(["get", "secrets"])
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).dropLast().joined(separator: " ") }
        #expect(lines == ["NAME TYPE DATA", "pull kubernetes.io/dockerconfigjson 1", "two-keys Opaque 2"], "\(r.stdout)")
        #expect(r.stdout.hasPrefix("NAME       TYPE                             DATA   AGE\n"))
        r = try await f.kubectl(["get", "namespace", "default", "--no-headers"])
        #expect(r.stdout.split(separator: " ", omittingEmptySubsequences: true).prefix(2) == ["default", "Active"])
        r = try await f.kubectl(["get", "serviceaccounts", "-A", "--no-headers"])
        #expect(r.stdout.split(separator: "\n").count == 4)
    }

    @Test func namespaceDeletionTerminates() async throws {
        let f = try await KubectlFixture()
        defer { Task { await f.emulator.stop() } }
        _ = try await f.kubectl(["create", "namespace", "gone"])
        _ = try await f.kubectl(["create", "secret", "generic", "s", "-n", "gone", "--from-literal=a=b"])
        var r = try await f.kubectl(["delete", "namespace", "gone"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == "namespace \"gone\" deleted\n")
        r = try await f.kubectl(["get", "secrets", "-n", "gone", "-o", "name"])
        #expect(r.stdout == "")
        r = try await f.kubectl(["delete", "namespace", "default"])
        #expect(r.code == 1)
        #expect(r.stderr == "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted\n")
    }

    @Test func configMapsAsKubectlSeesThem() async throws {
        let f = try await KubectlFixture()
        defer { Task { await f.emulator.stop() } }
        // Binary file content goes to binaryData (kubectl sends it as protobuf): it must round-trip byte-exact.
        let binary: [UInt8] = [0x00, 0xFF, 0xFE, 0x80, 0x0A, 0x7F]
        try Data(binary).write(to: URL(fileURLWithPath: f.dir.file("trust.p12")))
        var r = try await f.kubectl(["create", "configmap", "ca", "--from-literal=endpoint=https://api.example", "--from-file=trust.p12=\(f.dir.file("trust.p12"))"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == "configmap/ca created\n")
        r = try await f.kubectl(["get", "configmap", "ca", "-o", "jsonpath={.data.endpoint} {.binaryData.trust\\.p12}"])
        #expect(r.stdout == "https://api.example \(Base64.encode(binary))", "\(r.stderr)")
        r = try await f.kubectl(["get", "cm"])
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).dropLast().joined(separator: " ") }
        #expect(lines == ["NAME DATA", "ca 2"], "\(r.stdout)")

        let manifest = """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: app}
        data: {mode: blue}

        """
        r = try await f.kubectl(["apply", "-f", "-"], stdin: manifest)
        #expect(r.stdout == "configmap/app created\n", "\(r.stderr)")
        r = try await f.kubectl(["apply", "-f", "-"], stdin: manifest.replacingOccurrences(of: "blue", with: "green"))
        #expect(r.stdout == "configmap/app configured\n", "\(r.stderr)")
        r = try await f.kubectl(["get", "configmap", "app", "-o", "jsonpath={.data.mode}"])
        #expect(r.stdout == "green")

        // The API server's ConfigMap rules, in its words.
        r = try await f.kubectl(["apply", "-f", "-"], stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\ndata: {k: a}\nbinaryData: {k: YQ==}\n")
        #expect(r.code == 1)
        #expect(r.stderr == "The ConfigMap \"dup\" is invalid: data[k]: Invalid value: \"k\": duplicate of key present in binaryData\n", "\(r.stderr)")
        r = try await f.kubectl(["apply", "-f", "-"], stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b64}\nbinaryData: {k: \"not base64!\"}\n")
        #expect(r.code == 1)
        #expect(r.stderr.contains("illegal base64 data at input byte 3"), "\(r.stderr)")
        r = try await f.kubectl(["apply", "-f", "-"], stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {k: a}\n")
        #expect(r.code == 0, "\(r.stderr)")
        r = try await f.kubectl(["patch", "configmap", "frozen", "--type", "merge", "-p", #"{"data":{"k":"b"}}"#])
        #expect(r.code == 1)
        #expect(r.stderr == "The ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set\n", "\(r.stderr)")
        r = try await f.kubectl(["delete", "configmap", "app"])
        #expect(r.stdout == "configmap \"app\" deleted\n", "\(r.stderr)")
    }
}
