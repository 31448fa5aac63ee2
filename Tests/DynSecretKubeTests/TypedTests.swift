import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

@Suite struct TypedTests {
    @Test func secretsNamespacesServiceAccountsAsModels() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        let ns = try await c.create(Namespace(metadata: ObjectMeta(name: "team-a")))
        #expect(ns.phase == "Active")
        #expect(ns.finalizers == ["kubernetes"])
        #expect(ns.metadata.labels["kubernetes.io/metadata.name"] == "team-a")

        let s = try await c.create(Secret(metadata: ObjectMeta(name: "pull", namespace: "team-a"), type: SecretType.dockerConfigJSON,
                                          data: [".dockerconfigjson": Array(#"{"auths":{}}"#.utf8)]))
        #expect(s.metadata.uid != nil)
        var changed = s
        changed.data["extra"] = Array("x".utf8)
        let updated = try await c.update(changed)
        #expect(updated.data["extra"] == Array("x".utf8))
        do {
            _ = try await c.update(changed)
            Issue.record("stale typed update accepted")
        } catch {
            #expect(error.reason == "Conflict")
        }
        let pulls = try await c.list(Secret.self, namespace: "team-a", options: ListOptions(fieldSelector: "type=kubernetes.io/dockerconfigjson"))
        #expect(pulls.items.map { $0.metadata.name } == ["pull"])

        var sa = try await c.get(ServiceAccount.self, namespace: "team-a", name: "default")
        sa.imagePullSecrets = ["pull"]
        let saUpdated = try await c.update(sa)
        #expect(saUpdated.imagePullSecrets == ["pull"])

        try await c.delete(Secret.self, namespace: "team-a", name: "pull", preconditions: DeletePreconditions(uid: s.metadata.uid))
        #expect(try await c.list(Secret.self, namespace: "team-a").items.isEmpty)
    }

    @Test func leasesAndEventsWithMicroTime() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        let t = Lease.microTime(secondsSinceEpoch: 1_795_705_200, microseconds: 42)
        #expect(t == "2026-11-26T15:00:00.000042Z")  // date -u -d @1795705200
        #expect(Lease.microTime(secondsSinceEpoch: 951_782_400, microseconds: 0) == "2000-02-29T00:00:00.000000Z")
        #expect(Lease.microTime(secondsSinceEpoch: 0, microseconds: 999_999) == "1970-01-01T00:00:00.999999Z")
        let lease = try await c.create(Lease(metadata: ObjectMeta(name: "dynsecret-leader", namespace: "kube-system"), holderIdentity: "pod-a",
                                             leaseDurationSeconds: 15, acquireTime: t, renewTime: t, leaseTransitions: 0))
        #expect(lease.holderIdentity == "pod-a")
        do {
            _ = try await c.create(Lease(metadata: ObjectMeta(name: "bad", namespace: "kube-system"), renewTime: "2026-11-26T11:00:00Z"))
            Issue.record("a MicroTime without six fractional digits was accepted")
        } catch {
            #expect(error.httpStatus == 400)
            #expect(error.message == #"Lease in version "v1" cannot be handled as a Lease: parsing time "2026-11-26T11:00:00Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000""#)
        }
        var ev = Event(metadata: ObjectMeta(name: "pull.1", namespace: "default"), involvedObject: ["kind": "Secret", "namespace": "default", "name": "pull"],
                       reason: "ReplicaConflict", message: "a Secret not owned by dynsecret exists", type: "Warning")
        ev.eventTime = t
        ev.reportingComponent = "dynsecret"
        ev.reportingInstance = "pod-a"
        ev.action = "Replicate"
        _ = try await c.create(ev)
        let found = try await c.list(Event.self, namespace: "default", options: ListOptions(fieldSelector: "involvedObject.name=pull,reason=ReplicaConflict"))
        #expect(found.items.map(\.message) == ["a Secret not owned by dynsecret exists"])
    }
}
