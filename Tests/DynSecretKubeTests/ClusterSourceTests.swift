import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

@Suite struct ClusterSourceTests {
    @Test func pullSecretsAreListedWithATypeFieldSelector() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        _ = try await c.create(Namespace(metadata: ObjectMeta(name: "team-b")))
        _ = try await c.create(Secret(metadata: ObjectMeta(name: "json", namespace: "team-b"), type: SecretType.dockerConfigJSON, data: [".dockerconfigjson": Array("{}".utf8)]))
        _ = try await c.create(Secret(metadata: ObjectMeta(name: "cfg", namespace: "default"), type: SecretType.dockercfg, data: [".dockercfg": Array("{}".utf8)]))
        _ = try await c.create(Secret(metadata: ObjectMeta(name: "opaque", namespace: "default"), data: ["k": Array("v".utf8)]))
        e.resetCounters()
        let all = try await c.pullSecrets(namespace: nil)
        #expect(all.map { "\($0.metadata.namespace!)/\($0.metadata.name!)" } == ["default/cfg", "team-b/json"])
        #expect(e.counters()["list secrets"] == 2)
        let inDefault = try await c.pullSecrets(namespace: "default")
        #expect(inDefault.map { $0.metadata.name } == ["cfg"])
    }

    @Test func applyCreatesUpdatesAndLeavesEqualContentAlone() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        var s = Secret(metadata: ObjectMeta(name: "regcred", namespace: "default", labels: ["app": "x"]), type: SecretType.dockerConfigJSON,
                       data: [".dockerconfigjson": Array(#"{"auths":{}}"#.utf8)])
        #expect(try await c.apply(s) == .created)
        e.resetCounters()
        #expect(try await c.apply(s) == .unchanged)
        #expect(e.counters()["update", default: 0] == 0)
        s.data[".dockerconfigjson"] = Array(#"{"auths":{"ghcr.io":{}}}"#.utf8)
        #expect(try await c.apply(s) == .updated)
        #expect(e.counters()["update"] == 1)
        let stored = try await c.get(Secret.self, namespace: "default", name: "regcred")
        #expect(stored.data[".dockerconfigjson"] == Array(#"{"auths":{"ghcr.io":{}}}"#.utf8))
        #expect(stored.metadata.labels["app"] == "x")
    }
}
