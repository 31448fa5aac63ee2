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

@Suite struct EmulatorBehaviourTests {
    @Test func deleteCollectionBySelector() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        for i in 0..<6 { _ = try await c.create(.secrets, secret("c\(i)", labels: ["group": i < 4 ? "a" : "b"])) }
        let result = try await c.call("DELETE", KubeResource.secrets.path(namespace: "default"), query: [("labelSelector", "group=a")])
        #expect(result["items"]?.arrayValue?.count == 4)
        let left = try await c.list(.secrets, namespace: "default")
        #expect(left.items.compactMap { $0["metadata"]?["name"]?.stringValue } == ["c4", "c5"])
    }

    @Test func unchangedUpdateKeepsResourceVersion() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        let created = try await c.create(.secrets, secret("same"))
        let again = try await c.update(.secrets, created)
        #expect(again["metadata"]?["resourceVersion"] == created["metadata"]?["resourceVersion"])
        let before = e.resourceVersion
        _ = try await c.mergePatch(.secrets, name: "same", .object(JSONObject([("data", .object(JSONObject([("k", .string(Base64.encode(Array("v".utf8))))])))])))
        #expect(e.resourceVersion == before)
    }

    @Test func secretUpdateRules() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        var s = secret("locked").objectValue!
        s["immutable"] = .bool(true)
        let created = try await c.create(.secrets, .object(s))
        var changed = created.objectValue!
        changed["type"] = .string("kubernetes.io/basic-auth")
        changed["data"] = .object(JSONObject([("username", .string("eA=="))]))
        do {
            _ = try await c.update(.secrets, .object(changed))
            Issue.record("immutable secret changed")
        } catch {
            #expect(error.httpStatus == 422)
            #expect(error.message == "Secret \"locked\" is invalid: [type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable, data: Forbidden: field is immutable when `immutable` is set]")
            #expect(error.status?.causes.map(\.field) == ["type", "data"])
        }
    }
}

@Suite struct LabelSelectorTests {
    @Test func informerCacheSelectors() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        for (n, tier) in [("a", "web"), ("b", "db"), ("c", "web")] { _ = try await c.create(.secrets, secret(n, labels: ["tier": tier])) }
        _ = try await c.create(.secrets, secret("d"))
        let informer = Informer(client: c, resource: .secrets, namespace: "default", options: ListOptions(labelSelector: "tier"))
        #expect(!informer.hasSynced)
        let collector = Collector(informer.events())
        #expect(await collector.wait { Collector.syncs($0) == 1 })
        #expect(informer.hasSynced)
        #expect(informer.objects.count == 3, "the server-side selector keeps d out of the cache")
        #expect(try informer.objects(matching: "tier=web").map(name) == ["a", "c"])
        #expect(try informer.objects(matching: "tier!=web").map(name) == ["b"])
        collector.task.cancel()
    }
}
