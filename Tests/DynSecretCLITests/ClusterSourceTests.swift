import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

private let canary = "CANARY-cluster-4d2e"
private let token = "cluster-test-token"

/// An emulator and a kubeconfig file pointing at it.
struct ClusterFixture {
    let emulator: KubeEmulator
    let dir: TempDir
    let kubeconfig: String
    let client: KubeClient

    static func start() async throws -> ClusterFixture {
        var options = EmulatorOptions()
        options.tokens = [TokenGrant(token: token, user: "admin")]
        let e = try await KubeEmulator.start(options)
        let dir = try TempDir()
        let kubeconfig = try dir.file("kubeconfig", e.kubeconfig(token: token, namespace: "team-a"))
        let client = KubeClient(config: KubeConfig(server: e.url, namespace: "team-a", credentials: .token(token)))
        for ns in ["team-a", "team-b"] {
            _ = try await client.create(.namespaces, .object(JSONObject([("apiVersion", .string("v1")), ("kind", .string("Namespace")),
                                                                          ("metadata", .object(JSONObject([("name", .string(ns))])))])))
        }
        return ClusterFixture(emulator: e, dir: dir, kubeconfig: kubeconfig, client: client)
    }

    func put(_ yaml: String) async throws {
        for doc in try ManifestReader.read(Array(yaml.utf8), source: "fixture") {
            let ns = doc.value["metadata"]?["namespace"]?.stringValue ?? "team-a"
            let kind = doc.value["kind"]?.stringValue
            _ = try await client.create(kind == "ServiceAccount" ? .serviceAccounts : .secrets, namespace: ns, doc.value)
        }
    }

    func stop() async { await emulator.stop() }
}

private func pullSecretYAML(_ name: String, namespace: String, registry: String, user: String = "bot") -> String {
    let payload = #"{"auths":{"\#(registry)":{"auth":"\#(Base64.encode(Array("\(user):\(canary)".utf8)))"}}}"#
    return "apiVersion: v1\nkind: Secret\nmetadata: {name: \(name), namespace: \(namespace)}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: \(Base64.encode(Array(payload.utf8)))\n"
}

@Suite struct ClusterSourceTests {
    @Test func createRegistryApply() async throws {
        let c = try await ClusterFixture.start()
        let args = ["create-registry", "regcred", "--server", "nvcr.io", "--username", "$oauthtoken", "--password-stdin", "--apply", "--kubeconfig", c.kubeconfig]
        var r = await dynsecret(args, stdin: canary)
        #expect(r.code == 0 && r.stdout == "secret/regcred created\n", "\(r.stderr)")
        r = await dynsecret(args, stdin: canary)
        #expect(r.code == 0 && r.stdout == "secret/regcred unchanged\n", "\(r.stderr)")
        r = await dynsecret(args, stdin: canary + "-rotated")
        #expect(r.code == 0 && r.stdout == "secret/regcred configured\n", "\(r.stderr)")
        let live = try await c.client.get(Secret.self, namespace: "team-a", name: "regcred")
        let entries = try #require(try PullSecret.entries(of: live))
        #expect(entries.map(\.key) == ["nvcr.io"] && entries.first?.credential.password == canary + "-rotated")
        #expect(!r.stdout.contains(canary) && !r.stderr.contains(canary))
        let bad = await dynsecret(args + ["-n", "missing-ns"], stdin: canary)
        #expect(bad.code == 2 && bad.stdout.isEmpty && bad.stderr.hasPrefix("error: applying Secret missing-ns/regcred"))
        // A file saved with `kubectl get -o yaml` from another cluster carries server-set fields: merged and applied
        // where no such Secret exists, it is created (a create that carried the old resourceVersion would be refused).
        let saved = pullSecretYAML("copied", namespace: "team-a", registry: "ghcr.io").replacingOccurrences(
            of: "metadata: {name: copied, namespace: team-a}",
            with: "metadata: {name: copied, namespace: team-a, uid: 0b6a1f5e-1111-4c2e-9d1a-5d3f0c2b7a10, resourceVersion: \"987654\", creationTimestamp: \"2026-01-02T03:04:05Z\"}")
        let dir = try TempDir()
        let file = try dir.file("copied.yaml", saved)
        r = await dynsecret(["create-registry", "--merge-into", file, "--server", "nvcr.io", "--username", "v", "--password-stdin", "--apply", "--kubeconfig", c.kubeconfig],
                            stdin: canary)
        #expect(r.code == 0 && r.stdout == "secret/copied created\n", "\(r.stdout)\(r.stderr)")
        let copied = try await c.client.get(Secret.self, namespace: "team-a", name: "copied")
        #expect(copied.metadata.uid != "0b6a1f5e-1111-4c2e-9d1a-5d3f0c2b7a10")
        #expect(try #require(try PullSecret.entries(of: copied)).map(\.key) == ["ghcr.io", "nvcr.io"])
        #expect(!r.stdout.contains(canary) && !r.stderr.contains(canary))
        await c.stop()
    }

    @Test func indexAndWhichFromTheCluster() async throws {
        let c = try await ClusterFixture.start()
        try await c.put(pullSecretYAML("ngc", namespace: "team-a", registry: "nvcr.io"))
        try await c.put(pullSecretYAML("ghcr", namespace: "team-b", registry: "ghcr.io"))
        try await c.put("apiVersion: v1\nkind: Secret\nmetadata: {name: broken, namespace: team-b}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{\"auths\":{\"quay.io\":{\"auth\":\"\(canary)\"}}}'\n")
        try await c.put("apiVersion: v1\nkind: Secret\nmetadata: {name: opaque, namespace: team-a}\nstringData: {password: \(canary)}\n")
        try await c.put("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: worker, namespace: team-a}\nimagePullSecrets: [{name: ngc}]\n")

        let all = await dynsecret(["index", "--cluster", "-A", "--kubeconfig", c.kubeconfig, "-o", "json"])
        #expect(all.code == 1)  // one malformed pull secret, reported and skipped
        let out = try JSONParser.parse(all.stdout)
        #expect(out["pullSecrets"] == .number("2"))
        #expect(out["problems"]?.arrayValue?.first?["name"] == .string("broken"))
        let one = await dynsecret(["index", "--cluster", "--kubeconfig", c.kubeconfig])  // the context's namespace
        #expect(one.code == 0 && one.stdout.contains("team-a      nvcr.io    ngc") && !one.stdout.contains("team-b"), "\(one.stdout)")

        let which = await dynsecret(["which", "nvcr.io/nvidia/tritonserver:24.08-py3", "--cluster", "--service-account", "worker", "--kubeconfig", c.kubeconfig])
        #expect(which.code == 0, "\(which.stderr)")
        #expect(which.stdout.contains("pull secrets (ServiceAccount team-a/worker): ngc"))
        #expect(which.stdout.contains("1. ngc [nvcr.io] user bot: key nvcr.io matches"))
        for r in [all, one, which] { #expect(!r.stdout.contains(canary) && !r.stderr.contains(canary)) }
        await c.stop()
    }

    @Test func validateAgainstTheCluster() async throws {
        let c = try await ClusterFixture.start()
        try await c.put(pullSecretYAML("ngc", namespace: "team-a", registry: "nvcr.io"))
        try await c.put("apiVersion: v1\nkind: Secret\nmetadata: {name: broken, namespace: team-a}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{\"auths\":{\"quay.io\":{\"auth\":\"\(canary)\"}}}'\n")
        let deployment = """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: worker, namespace: team-a}
            spec:
              template:
                spec:
                  imagePullSecrets: [{name: ngc}]
                  containers: [{name: triton, image: "nvcr.io/nvidia/tritonserver:24.08-py3"}]
            """
        // Without the cluster the pull secret is unknown; with it the image is covered.
        let offline = await dynsecret(["validate", "-f", "-", "--private-registry", "nvcr.io", "-o", "json"], stdin: deployment)
        let offlineRules = (try JSONParser.parse(offline.stdout)["findings"]?.arrayValue ?? []).compactMap { $0["rule"]?.stringValue }.sorted()
        #expect(offlineRules == ["image-uncovered", "pull-secret-missing"])
        let online = await dynsecret(["validate", "-f", "-", "--cluster", "--kubeconfig", c.kubeconfig, "--private-registry", "nvcr.io", "-o", "json"],
                                     stdin: deployment)
        let findings = try JSONParser.parse(online.stdout)["findings"]?.arrayValue ?? []
        #expect(findings.compactMap { $0["rule"]?.stringValue } == ["pull-secret-malformed"])
        #expect(findings.first?["source"] == .string("cluster:secret/team-a/broken"))
        #expect(online.code == 1 && !online.stdout.contains(canary))
        await c.stop()
    }

    @Test func storeRestoreApply() async throws {
        let c = try await ClusterFixture.start()
        let k = c.dir.url.appendingPathComponent("keyring.yaml").path
        let store = c.dir.url.appendingPathComponent("store").path
        #expect(await dynsecret(["keys", "generate", "--keyring", k]).code == 0)
        let manifest = "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: team-b, uid: 0a1b, resourceVersion: '7'}\nstringData: {password: \(canary)}\n"
        let put = await dynsecret(["store", "put", "--store", store, "--keyring", k, "-f", "-"], stdin: manifest)
        #expect(put.code == 0, "\(put.stderr)")
        let r = await dynsecret(["store", "restore", "--store", store, "--keyring", k, "--apply", "--kubeconfig", c.kubeconfig])
        #expect(r.code == 0 && r.stdout == "secret/team-b/db created\n", "\(r.stderr)")
        let live = try await c.client.get(Secret.self, namespace: "team-b", name: "db")
        #expect(live.mergedData["password"] == Array(canary.utf8))
        #expect(!r.stdout.contains(canary) && !r.stderr.contains(canary))
        await c.stop()
    }
}
