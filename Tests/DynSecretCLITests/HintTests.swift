import DynSecretCore
import Foundation
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
