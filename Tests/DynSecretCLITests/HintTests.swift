import DynSecretCore
import Foundation
import KubeEmulator
import DynSecretKube
import Testing

/// When nothing the pod lists covers an image, `which` and `validate` name the namespace's pull secrets that
/// would, with the exact `imagePullSecrets` entry to add; `index` explains an empty answer.
@Suite struct HintTests {
    static let secret = "CANARY-hint-7d1e"

    /// Pull secrets `regcred` (nvcr.io), `ghcr` (ghcr.io) in `ns`, and `elsewhere` (nvcr.io) in another namespace.
    static func files(_ dir: TempDir) async throws -> String {
        var all = ""
        for (name, ns, server) in [("regcred", "ns", "nvcr.io"), ("ghcr", "ns", "ghcr.io"), ("elsewhere", "other", "nvcr.io")] {
            let r = await dynsecret(["create-registry", name, "-n", ns, "--server", server, "--username", "u", "--password-stdin"], stdin: secret)
            #expect(r.code == 0)
            all += r.stdout + "---\n"
        }
        return try dir.file("secrets.yaml", all)
    }

    @Test func whichNamesTheSecretThatWouldMatch() async throws {
        let dir = try TempDir()
        let f = try await Self.files(dir)
        let r = await dynsecret(["which", "nvcr.io/nvidia/tritonserver:24.08-py3", "-n", "ns", "-f", f])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("no credential matches: the kubelet pulls anonymously"))
        #expect(r.stdout.contains("hint: pull secret regcred in ns has key nvcr.io, which matches; to use it, add to the pod, or to ServiceAccount ns/default:\n  imagePullSecrets: [{name: regcred}]\n"), "\(r.stdout)")
        #expect(!r.stdout.contains("ghcr") && !r.stdout.contains("elsewhere"), "only matching Secrets of the pod's namespace: \(r.stdout)")
        #expect(!r.stdout.contains(Self.secret))

        let json = await dynsecret(["which", "nvcr.io/nvidia/tritonserver:24.08-py3", "-n", "ns", "-f", f, "--pull-secret", "ghcr", "-o", "json"])
        let v = try JSONParser.parse(Array(json.stdout.utf8))
        #expect(v["candidates"] == .array([.object(JSONObject([("secret", .string("regcred")), ("configKey", .string("nvcr.io")),
                                                              ("imagePullSecrets", .array([.object(JSONObject([("name", .string("regcred"))]))]))]))]), "\(json.stdout)")
        // When something matches, no hint.
        let matched = await dynsecret(["which", "nvcr.io/nvidia/tritonserver:24.08-py3", "-n", "ns", "-f", f, "--pull-secret", "regcred"])
        #expect(!matched.stdout.contains("hint:"), "\(matched.stdout)")
    }

    @Test func validateSaysWhichSecretWouldCoverAnUncoveredImage() async throws {
        let dir = try TempDir()
        let f = try await Self.files(dir)
        let pod = try dir.file("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns}\nspec:\n  imagePullSecrets: [{name: ghcr}]\n  containers: [{name: c, image: nvcr.io/nvidia/triton:1}]\n")
        let r = await dynsecret(["validate", "-f", f, "-f", pod, "--private-registry", "nvcr.io"])
        #expect(r.code == 1)
        #expect(r.stdout.contains("error[image-uncovered]") && r.stdout.contains("none of ghcr has credentials for it"), "\(r.stdout)")
        #expect(r.stdout.contains("pull secret regcred (key nvcr.io) would cover it: add imagePullSecrets: [{name: regcred}] to the pod or its ServiceAccount"), "\(r.stdout)")
        #expect(!r.stdout.contains("elsewhere"))
    }

    @Test func indexExplainsAnEmptyAnswer() async throws {
        let dir = try TempDir()
        let f = try dir.file("opaque.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: ns}\ntype: Opaque\n")
        let r = await dynsecret(["index", "-f", f])
        #expect(r.code == 0)
        #expect(r.stderr.contains("no pull secrets in the input: the kubelet uses only Secrets of type kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg"), "\(r.stderr)")
    }
}

/// Progress of long CLI work shows on a terminal only (a pseudo-terminal from util-linux `script` here), as counts,
/// never a name or a value; piped, the output is exactly what it was without progress.
@Suite struct ProgressTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script") && dynsecretBinary != nil, "needs util-linux script"))
    func progressOnATerminalOnly() async throws {
        let e = try await KubeEmulator.start()
        defer { Task { await e.stop() } }
        let c = KubeClient(config: KubeConfig(server: e.url))
        for i in 0..<30 {
            var s = Secret(metadata: ObjectMeta(name: "pull-\(i)", namespace: "default"), type: SecretType.dockerConfigJSON)
            s.data[".dockerconfigjson"] = Array(#"{"auths":{"r\#(i).example":{"auth":"\#(Base64.encode(Array("u:\(HintTests.secret)".utf8)))"}}}"#.utf8)
            _ = try await c.create(s)
        }
        let dir = try TempDir()
        let kc = try dir.file("kubeconfig", e.kubeconfig())
        let bin = try #require(dynsecretBinary)
        let piped = try runProcess(bin, ["index", "--cluster", "-A", "--kubeconfig", kc])
        #expect(piped.code == 0 && !piped.stderr.contains("reading pull secrets"), "\(piped.stderr)")
        let tty = try runProcess("/usr/bin/env", ["-u", "NO_COLOR", "TERM=xterm", "/usr/bin/script", "-qec", "\(bin) index --cluster -A --kubeconfig \(kc)", "/dev/null"])
        #expect(tty.code == 0, "\(tty.stdout)")
        #expect(tty.stdout.contains("\r\u{1B}[2Kreading pull secrets: "), "\(tty.stdout.debugDescription)")
        #expect(tty.stdout.contains("r29.example"))
        #expect(!tty.stdout.contains(HintTests.secret))
        let plain = try runProcess("/usr/bin/env", ["NO_COLOR=1", "TERM=xterm", "/usr/bin/script", "-qec", "\(bin) index --cluster -A --kubeconfig \(kc)", "/dev/null"])
        #expect(plain.stdout.contains("reading pull secrets: ") && !plain.stdout.contains("\u{1B}["), "\(plain.stdout.debugDescription)")
    }
}
