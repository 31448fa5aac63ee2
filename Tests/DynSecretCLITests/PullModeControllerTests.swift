import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// Pull mode end to end: namespace owners request a pull secret with kubectl (a stub carrying
/// `dynsecret.io/replicate-from`), the controller — holding exactly the RBAC `deploy/base` renders — fills the stubs
/// the rule allows in place, carries source changes, leaves refused requests alone, and deletes a copy whose request
/// is withdrawn. `replicate --dry-run` sees the same requests.
@Suite(.serialized) struct PullModeControllerTests {
    static let admin = "pull-e2e-admin"
    static let controllerToken = "pull-e2e-controller"
    static let canary = "CANARY-pullmode-5b7e21-never-print"

    static let policy = """
        apiVersion: dynsecret.io/v1alpha1
        kind: ReplicationPolicy
        metadata: {name: requests}
        spec:
          rules:
          - name: nvcr
            source: {namespace: platform, name: nvcr-pull}
            targets:
              requested: true
              namespacePatterns: ["team-*"]
            serviceAccounts: [default]
        """

    /// A stub as a namespace owner applies it: `{}` as the placeholder content, any name.
    static func stub(_ ns: String, _ name: String) -> String {
        """
        apiVersion: v1
        kind: Secret
        type: kubernetes.io/dockerconfigjson
        metadata:
          name: \(name)
          namespace: \(ns)
          labels: {owner: \(ns)}
          annotations:
            dynsecret.io/replicate-from: platform/nvcr-pull
        data:
          .dockerconfigjson: e30K
        """
    }

    static func config(_ value: String) -> String { #"{"auths":{"nvcr.io":{"username":"$oauthtoken","password":"\#(value)"}}}"# }

    @Test(.heavy, .enabled(if: kubectlPath != nil && dynsecretBinary != nil, "needs kubectl and the dynsecret binary"))
    func requestsAreFilledFollowedAndWithdrawn() async throws {
        let rules = try DeployManifestTests.emulatorRules(try DeployManifestTests.objects(try DeployManifestTests.renderOverlay(components: [])))
        let cluster = try await TLSCluster.start(admin: Self.admin, controller: Self.controllerToken, rules: rules)
        let e = cluster.emulator, dir = cluster.dir, c = cluster.admin
        defer { Task { await e.stop() } }
        func kubectl(_ args: [String], stdin: String? = nil) throws -> (code: Int32, stdout: String, stderr: String) { try cluster.kubectl(args, stdin: stdin) }
        for ns in ["platform", "dynsecret-system", "team-0", "team-1", "other"] { _ = try await c.create(.namespaces, Fixtures.namespace(ns)) }
        var source = Secret(metadata: ObjectMeta(name: "nvcr-pull", namespace: "platform"), type: SecretType.dockerConfigJSON,
                            data: [".dockerconfigjson": Array(Self.config(Self.canary + "-v1").utf8)])
        source = try await c.create(source)
        for (ns, name) in [("team-0", "gpu-pull"), ("other", "gpu-pull")] {
            let r = try kubectl(["apply", "-f", "-"], stdin: Self.stub(ns, name))
            #expect(r.code == 0, "\(r.stderr)")
        }
        let stub = try await c.get(Secret.self, namespace: "team-0", name: "gpu-pull")

        // Before the controller: the one-shot plan sees the same request.
        let policyPath = try dir.file("policy.yaml", Self.policy)
        let plan = try runProcess(dynsecretBinary!, ["replicate", "--policy", policyPath, "--kubeconfig", cluster.adminConfig, "--dry-run"])
        #expect(plan.code == 0, "\(plan.stderr)")
        #expect(plan.stdout.contains("update  Secret  team-0/gpu-pull") || plan.stdout.range(of: #"update\s+Secret\s+team-0/gpu-pull"#, options: .regularExpression) != nil, "\(plan.stdout)")
        #expect(plan.stdout.contains("the rule does not allow namespace other"), "\(plan.stdout)")
        #expect(!plan.stdout.contains(Self.canary))

        let ctl = try ControllerProcess([
            "--policy", policyPath, "--kubeconfig", try cluster.controllerConfig(),
            "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--leader-elect", "--leader-election-namespace", "dynsecret-system",
        ], log: dir.url.appendingPathComponent("controller.log").path)
        defer { Task { _ = await ctl.stop() } }

        func value(_ ns: String, _ name: String) async throws -> String? {
            guard let s = try? await c.get(Secret.self, namespace: ns, name: name) else { return nil }
            return s.data[".dockerconfigjson"].map { String(decoding: $0, as: UTF8.self) }
        }
        let filled = try await waitFor(.seconds(30)) { try await value("team-0", "gpu-pull") == Self.config(Self.canary + "-v1") }
        #expect(filled != nil, "\(ctl.log.suffix(3000))")
        let copy = try await c.get(Secret.self, namespace: "team-0", name: "gpu-pull")
        #expect(copy.metadata.uid == stub.metadata.uid, "filled in place")
        #expect(copy.metadata.labels["owner"] == "team-0" && copy.metadata.annotations[ReplicaMarkers.requestAnnotation] == "platform/nvcr-pull")
        #expect(try await c.get(ServiceAccount.self, namespace: "team-0", name: "default").imagePullSecrets == ["gpu-pull"])
        #expect(try await value("other", "gpu-pull") == "{}\n", "a namespace the rule does not allow is refused")
        #expect(try await c.list(Secret.self, namespace: "team-1").items.isEmpty, "an allowed namespace that asks for nothing gets nothing")

        // A request made while the controller runs, under another name.
        var r = try kubectl(["apply", "-f", "-"], stdin: Self.stub("team-1", "ngc"))
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try await waitFor(.seconds(20)) { try await value("team-1", "ngc") == Self.config(Self.canary + "-v1") } != nil, "\(ctl.log.suffix(2000))")

        // The source rotates: every requested copy follows.
        _ = try await c.mergePatch(Secret.self, namespace: "platform", name: "nvcr-pull", .object(JSONObject([
            ("data", .object(JSONObject([(".dockerconfigjson", .string(Base64.encode(Array(Self.config(Self.canary + "-v2").utf8))))]))),
        ])))
        let rotated = try await waitFor(.seconds(20)) {
            let a = try await value("team-0", "gpu-pull"), b = try await value("team-1", "ngc")
            return a == Self.config(Self.canary + "-v2") && b == Self.config(Self.canary + "-v2")
        }
        #expect(rotated != nil, "\(ctl.log.suffix(2000))")

        // The owner withdraws the request: the copy goes (prune); the other stays.
        r = try kubectl(["annotate", "secret", "ngc", "-n", "team-1", "dynsecret.io/replicate-from-"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try await waitFor(.seconds(20)) { try await value("team-1", "ngc") == nil } != nil, "\(ctl.log.suffix(2000))")
        #expect(try await value("team-0", "gpu-pull") == Self.config(Self.canary + "-v2"))
        #expect(try await value("other", "gpu-pull") == "{}\n")

        // The refused request is told to its namespace owner, on the stub.
        r = try kubectl(["get", "events", "-n", "other", "--field-selector", "reason=RequestRefused",
                         "-o", "jsonpath={.items[*].involvedObject.name}|{.items[*].message}"])
        #expect(r.stdout.hasPrefix("gpu-pull|") && r.stdout.contains("the rule does not allow namespace other"), "\(r.stdout) \(r.stderr)")

        let counters = e.counters()
        #expect(counters["controller forbidden"] == nil, "the rendered RBAC covers pull mode: \(counters.filter { $0.key.hasPrefix("controller") })")
        let log = ctl.log
        #expect(!log.contains(Self.canary) && !log.contains(Base64.encode(Array(Self.canary.utf8))))
        let stop = await ctl.stop()
        #expect(stop.status == 0, "\(log.suffix(2000))")
    }
}
