import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// One controller, one policy, both kinds: Secrets and ConfigMaps replicated, updated, pruned, conflicts skipped,
/// binaryData byte-exact, driven and read with kubectl, the controller holding exactly the RBAC that
/// `deploy/base` + `components/configmaps` renders.
@Suite(.serialized) struct ConfigMapControllerTests {
    static let admin = "cm-e2e-admin"
    static let controllerToken = "cm-e2e-controller"
    static let canary = "CANARY-configmap-7d41e0-never-print"
    static let binary: [UInt8] = [0x00, 0xFF, 0xFE, 0x80, 0x0A, 0x7F, 0xC3, 0x28]

    static let policy = """
        apiVersion: dynsecret.io/v1alpha1
        kind: ReplicationPolicy
        metadata: {name: shared}
        spec:
          rules:
          - name: pull
            source: {namespace: platform, name: pull}
            targets:
              namespaceSelector: {matchLabels: {dynsecret: "on"}}
          - name: ca
            source: {kind: ConfigMap, namespace: platform, selector: {matchLabels: {share: ca}}}
            targets:
              namespaceSelector: {matchLabels: {dynsecret: "on"}}
        """

    @Test(.heavy, .enabled(if: kubectlPath != nil && dynsecretBinary != nil, "needs kubectl and the dynsecret binary"))
    func bothKindsUnderTheRenderedRBAC() async throws {
        let rules = try DeployManifestTests.emulatorRules(try DeployManifestTests.objects(try DeployManifestTests.renderOverlay(components: ["configmaps"])))
        let cluster = try await TLSCluster.start(admin: Self.admin, controller: Self.controllerToken, rules: rules)
        let e = cluster.emulator, dir = cluster.dir, c = cluster.admin
        defer { Task { await e.stop() } }
        func kubectl(_ args: [String], stdin: String? = nil) throws -> (code: Int32, stdout: String, stderr: String) { try cluster.kubectl(args, stdin: stdin) }
        for ns in ["platform", "dynsecret-system"] { _ = try await c.create(.namespaces, Fixtures.namespace(ns)) }
        try await Fixtures.createNamespaces(c, ["team-0", "team-1", "team-2"], labels: ["dynsecret": "on"])
        _ = try await c.create(Fixtures.secret("platform", "pull", Self.canary + "-v1"))
        try Data(Self.binary).write(to: URL(fileURLWithPath: dir.url.appendingPathComponent("trust.p12").path))
        var r = try kubectl(["create", "configmap", "ca-bundle", "-n", "platform", "--from-literal=ca.crt=PEM-v1",
                             "--from-file=trust.p12=\(dir.url.appendingPathComponent("trust.p12").path)"])
        #expect(r.code == 0, "\(r.stderr)")
        r = try kubectl(["label", "configmap", "ca-bundle", "-n", "platform", "share=ca"])
        #expect(r.code == 0, "\(r.stderr)")
        // A ConfigMap of the same name that dynsecret does not own: skipped, never written.
        r = try kubectl(["create", "configmap", "ca-bundle", "-n", "team-2", "--from-literal=ca.crt=theirs"])
        #expect(r.code == 0, "\(r.stderr)")

        let ctl = try ControllerProcess([
            "--policy", try dir.file("policy.yaml", Self.policy), "--kubeconfig", try cluster.controllerConfig(),
            "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--leader-elect", "--leader-election-namespace", "dynsecret-system",
        ], log: dir.url.appendingPathComponent("controller.log").path)
        defer { Task { _ = await ctl.stop() } }

        func configMap(_ ns: String) throws -> (data: String, binary: String, labels: String)? {
            let r = try kubectl(["get", "configmap", "ca-bundle", "-n", ns, "-o",
                                 "jsonpath={.data.ca\\.crt}|{.binaryData.trust\\.p12}|{.metadata.labels.dynsecret\\.io/replica}"])
            guard r.code == 0 else { return nil }
            let parts = r.stdout.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            return (parts[0], parts[1], parts[2])
        }
        let converged = try await waitFor(.seconds(30)) {
            let secrets = try await Fixtures.replicas(c)
            return try configMap("team-0")?.data == "PEM-v1" && configMap("team-1")?.data == "PEM-v1" && secrets.count == 3
        }
        #expect(converged != nil, "\(ctl.log.suffix(3000))")
        let copy = try #require(try configMap("team-0"))
        #expect(copy.binary == Base64.encode(Self.binary), "binaryData round-trips byte-exact")
        #expect(copy.labels == "true")
        #expect(try configMap("team-2")?.data == "theirs" && configMap("team-2")?.labels == "", "the foreign ConfigMap is untouched")
        let original = try await c.get(ConfigMap.self, namespace: "team-0", name: "ca-bundle")

        // Source changes of both kinds: merge patches, which the rendered RBAC must allow.
        r = try kubectl(["patch", "configmap", "ca-bundle", "-n", "platform", "--type", "merge", "-p", #"{"data":{"ca.crt":"PEM-v2"}}"#])
        #expect(r.code == 0, "\(r.stderr)")
        _ = try await c.mergePatch(Secret.self, namespace: "platform", name: "pull",
                                   .object(JSONObject([("data", .object(JSONObject([("token", .string(Base64.encode(Array((Self.canary + "-v2").utf8))))])))])))
        let updated = try await waitFor(.seconds(20)) {
            let secrets = try await Fixtures.replicas(c)
            return try configMap("team-0")?.data == "PEM-v2" && configMap("team-1")?.data == "PEM-v2"
                && secrets.values.allSatisfy { $0 == Self.canary + "-v2" }
        }
        #expect(updated != nil, "\(ctl.log.suffix(3000))")
        let after = try await c.get(ConfigMap.self, namespace: "team-0", name: "ca-bundle")
        #expect(after.metadata.uid == original.metadata.uid, "updated in place, never recreated")
        #expect(after.binaryData["trust.p12"] == Self.binary)

        // A hand edit of a replica is drift: put back from the source.
        r = try kubectl(["patch", "configmap", "ca-bundle", "-n", "team-1", "--type", "merge", "-p", #"{"binaryData":{"trust.p12":"AAAA"}}"#])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try await waitFor(.seconds(20)) { try configMap("team-1")?.binary == Base64.encode(Self.binary) } != nil, "\(ctl.log.suffix(2000))")

        // Unlabelled: both replicas pruned; the foreign ConfigMap stays.
        try await Fixtures.label(c, "team-1", false)
        let pruned = try await waitFor(.seconds(20)) {
            let secrets = try await Fixtures.replicas(c)
            return try configMap("team-1") == nil && secrets["team-1/pull"] == nil
        }
        #expect(pruned != nil, "\(ctl.log.suffix(2000))")
        #expect(try configMap("team-2")?.data == "theirs")
        r = try kubectl(["get", "events", "-n", "platform", "--field-selector", "reason=ReplicaConflict", "-o", "jsonpath={.items[*].involvedObject.kind}"])
        #expect(r.stdout.contains("ConfigMap"), "the conflict is reported on the source ConfigMap: \(r.stdout) \(r.stderr)")

        let counters = e.counters()
        #expect(counters["controller forbidden"] == nil, "the rendered RBAC covers every request: \(counters.filter { $0.key.hasPrefix("controller") })")
        #expect((counters["controller patch"] ?? 0) >= 5, "updates are merge patches")
        #expect(counters["update secrets"] == nil && counters["update configmaps"] == nil, "replicas are never written whole (PUT)")
        let log = ctl.log
        #expect(!log.contains(Self.canary) && !log.contains(Base64.encode(Array(Self.canary.utf8))))
        let stop = await ctl.stop()
        #expect(stop.status == 0, "\(log.suffix(2000))")
    }
}
