import Foundation
import Testing
@testable import DynSecretCore

/// The admission decision: AdmissionReview wire format (golden files after the Kubernetes documentation's examples)
/// and the `validate` rules applied to a request with the cluster read from `AdmissionSnapshot`.
@Suite struct AdmissionTests {
    static func golden(_ name: String) throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: "Golden/admission/" + name, withExtension: nil))
        return Array(try Data(contentsOf: url))
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// Compares with a golden response; `DYNSECRET_REGENERATE=1` rewrites it in the source tree (review the diff).
    static func expectGolden(_ response: AdmissionResponse, _ name: String) throws {
        if ProcessInfo.processInfo.environment["DYNSECRET_REGENERATE"] == "1" {
            let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/admission")
            try Data(response.body).write(to: dir.appendingPathComponent(name))
        }
        #expect(text(response.body) == text(try golden(name)))
    }

    static let ngcKey = "nvcr.io"
    static func pullSecret(_ name: String, namespace: String = "ml", registry: String = "nvcr.io", payload: String? = nil) -> JSONValue {
        let auth = Base64.encode(Array("$oauthtoken:CANARY-s3cr3t-value".utf8))
        let json = payload ?? #"{"auths":{"\#(registry)":{"auth":"\#(auth)"}}}"#
        return try! JSONParser.parse(#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"\#(name)","namespace":"\#(namespace)"},"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"\#(Base64.encode(Array(json.utf8)))"}}"#)
    }

    static func snapshot(enforce: Bool = true, secrets: [JSONValue] = []) -> AdmissionSnapshot {
        var s = AdmissionSnapshot()
        s.add(try! JSONParser.parse(#"{"kind":"Namespace","metadata":{"name":"ml","labels":{"dynsecret.io/admission":"\#(enforce ? "enforce" : "warn")"}}}"#))
        s.add(try! JSONParser.parse(#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default","namespace":"ml"}}"#))
        for x in secrets { s.add(x) }
        return s
    }

    static var reviewer: AdmissionReviewer {
        var p = AdmissionPolicy()
        p.privateRegistries = ["nvcr.io"]
        return AdmissionReviewer(policy: p)
    }

    @Test func documentationRequestDecodesAndIsAllowed() throws {
        let request = try AdmissionRequest.decode(Self.golden("docs-request.json"))
        #expect(request.uid == "705ab4f5-6393-11e8-b7cc-42010a800002")
        #expect(request.kind == "Scale" && request.group == "autoscaling" && request.resource == "deployments" && request.subResource == "scale")
        #expect(request.operation == "UPDATE" && request.namespace == "my-namespace" && !request.dryRun)
        let response = Self.reviewer.review(request, state: Self.snapshot())
        #expect(Self.text(response.body) == Self.text(try Self.golden("docs-response-allowed.json")))
    }

    @Test func responsesEncodeAsTheDocumentationShowsThem() throws {
        let uid = "705ab4f5-6393-11e8-b7cc-42010a800002"
        let denied = AdmissionResponse(uid: uid, allowed: false, code: 403, message: "You cannot do this because it is Tuesday and your name starts with A")
        #expect(Self.text(denied.body) == Self.text(try Self.golden("docs-response-denied.json")))
        let warned = AdmissionResponse(uid: uid, allowed: true, warnings: [
            "duplicate envvar entries specified with name MY_ENV",
            "memory request less than 4MB specified for container mycontainer, which will not start successfully",
        ])
        #expect(Self.text(warned.body) == Self.text(try Self.golden("docs-response-warnings.json")))
    }

    @Test(arguments: [
        ("", "the body is not JSON"),
        ("[]", "expected an AdmissionReview object, got array"),
        (#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#, "expected apiVersion admission.k8s.io/v1"),
        (#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "request: required object is missing"),
        (#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"version":"v1","kind":"Pod"},"operation":"CREATE"}}"#, "request.uid: required value is missing"),
        (#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":"s3cret"}}"#, "request.object: expected an object, got string"),
        (#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","dryRun":"yes"}}"#, "request.dryRun: expected a boolean, got string"),
    ])
    func badReviewsAreClearErrors(body: String, message: String) {
        #expect {
            _ = try AdmissionRequest.decode(Array(body.utf8))
        } throws: { error in
            let e = error as? AdmissionReviewError
            return e?.message.hasPrefix(message) == true && e?.message.contains("s3cret") == false
        }
    }

    @Test func uncoveredPrivateImageIsDeniedInEnforceMode() throws {
        let request = try AdmissionRequest.decode(Self.golden("deployment-uncovered-request.json"))
        let response = Self.reviewer.review(request, state: Self.snapshot(enforce: true))
        #expect(!response.allowed && response.code == 403 && response.uid == "3b9c1f4e-2d0a-4c55-9f0e-6a1d2b3c4d5e")
        let message = try #require(response.message)
        for part in ["container \"cuda\"", "nvcr.io/nvidia/cuda:12.4.0-base-ubuntu22.04", "registry nvcr.io", "ngc: not found", "[image-uncovered]"] {
            #expect(message.contains(part), "\(message)")
        }
        #expect(response.warnings.contains { $0.contains("[pull-secret-missing]") })
        try Self.expectGolden(response, "deployment-uncovered-denied.json")
    }

    @Test func uncoveredPrivateImageIsAWarningInWarnMode() throws {
        let request = try AdmissionRequest.decode(Self.golden("deployment-uncovered-request.json"))
        let response = Self.reviewer.review(request, state: Self.snapshot(enforce: false))
        #expect(response.allowed && response.message == nil)
        #expect(response.warnings.contains { $0.contains("[image-uncovered]") && $0.contains("nvcr.io") })
        #expect(response.warnings.allSatisfy { $0.count <= AdmissionResponse.maxWarningLength })
        try Self.expectGolden(response, "deployment-uncovered-warned.json")
    }

    @Test func coveredImageHasNoWarning() throws {
        let request = try AdmissionRequest.decode(Self.golden("deployment-uncovered-request.json"))
        let response = Self.reviewer.review(request, state: Self.snapshot(secrets: [Self.pullSecret("ngc")]))
        #expect(response.allowed && response.warnings.isEmpty && response.message == nil)
    }

    @Test func keyThatDoesNotMatchIsNamed() throws {
        let request = try AdmissionRequest.decode(Self.golden("deployment-uncovered-request.json"))
        let response = Self.reviewer.review(request, state: Self.snapshot(secrets: [Self.pullSecret("ngc", registry: "ghcr.io")]))
        #expect(!response.allowed)
        #expect(response.message?.contains("ngc: no key matches") == true, "\(response.message ?? "")")
    }

    @Test func serviceAccountPullSecretsCount() throws {
        var request = try AdmissionRequest.decode(Self.golden("deployment-uncovered-request.json"))
        var template = request.object!
        var spec = template["spec"]!.objectValue!
        var tpl = spec["template"]!.objectValue!
        var pod = tpl["spec"]!.objectValue!
        pod["imagePullSecrets"] = nil
        pod["serviceAccountName"] = .string("trainer")
        tpl["spec"] = .object(pod)
        spec["template"] = .object(tpl)
        template["spec"] = .object(spec)
        request.object = template
        var state = Self.snapshot(secrets: [Self.pullSecret("ngc")])
        #expect(!Self.reviewer.review(request, state: state).allowed)
        state.add(try JSONParser.parse(#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"trainer","namespace":"ml"},"imagePullSecrets":[{"name":"ngc"}]}"#))
        let response = Self.reviewer.review(request, state: state)
        #expect(response.allowed && response.warnings.isEmpty)
    }

    @Test func malformedPullSecretIsDenied() throws {
        let secret = Self.pullSecret("ngc", payload: #"{"auths":{"nvcr.io":{"auth":"!!!not-base64 CANARY-s3cr3t-value"}}}"#)
        let request = AdmissionRequest(uid: "u1", group: "", version: "v1", kind: "Secret", resource: "secrets", operation: "CREATE",
                                       namespace: "ml", name: "ngc", object: secret.objectValue)
        let response = Self.reviewer.review(request, state: Self.snapshot())
        #expect(!response.allowed && response.code == 403)
        #expect(response.message?.contains("[pull-secret-malformed]") == true, "\(response.message ?? "")")
        #expect(!Self.text(response.body).contains("CANARY"))
        // A pod naming it: every pull fails.
        var state = Self.snapshot(secrets: [secret])
        state.hasSynced = true
        let pod = AdmissionRequest(uid: "u2", group: "", version: "v1", kind: "Pod", operation: "CREATE", namespace: "ml", name: "p",
                                   object: try JSONParser.parse(#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"imagePullSecrets":[{"name":"ngc"}],"containers":[{"name":"c","image":"nvcr.io/x/y:1"}]}}"#).objectValue)
        let denied = Self.reviewer.review(pod, state: state)
        #expect(!denied.allowed && denied.message?.contains("[pull-secret-broken-ref]") == true)
        #expect(!Self.text(denied.body).contains("CANARY"))
    }

    @Test func serviceAccountNamingMissingPullSecretWarns() throws {
        let sa = try JSONParser.parse(#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"builder","namespace":"ml"},"imagePullSecrets":[{"name":"gone"}]}"#)
        let request = AdmissionRequest(uid: "u", group: "", version: "v1", kind: "ServiceAccount", operation: "CREATE", namespace: "ml", name: "builder", object: sa.objectValue)
        let response = Self.reviewer.review(request, state: Self.snapshot())
        #expect(response.allowed && response.warnings.count == 1 && response.warnings[0].contains("[pull-secret-missing]"), "\(response.warnings)")
    }

    @Test func skippedRequests() throws {
        let base = try AdmissionRequest.decode(Self.golden("deployment-uncovered-request.json"))
        var system = base
        system.namespace = "kube-system"
        #expect(Self.reviewer.review(system, state: Self.snapshot()).warnings.isEmpty)
        var notSynced = Self.snapshot()
        notSynced.hasSynced = false
        let early = Self.reviewer.review(base, state: notSynced)
        #expect(early.allowed && early.warnings == [AdmissionReviewer.notSynced])
        var unchanged = base
        unchanged.operation = "UPDATE"
        unchanged.oldObject = base.object
        #expect(Self.reviewer.review(unchanged, state: Self.snapshot()).allowed)
        var dry = base
        dry.dryRun = true
        #expect(Self.reviewer.review(dry, state: Self.snapshot()) == Self.reviewer.review(base, state: Self.snapshot()))
        var policy = AdmissionPolicy()
        policy.privateRegistries = ["nvcr.io"]
        policy.enforceNamespaces = ["ml"]
        #expect(!AdmissionReviewer(policy: policy).review(base, state: Self.snapshot(enforce: false)).allowed)
    }

    @Test func longWarningsAreShortened() {
        let long = String(repeating: "x", count: 600)
        #expect(AdmissionResponse.warning(long).count == 256)
    }

    @Test func policyFile() throws {
        let doc = try #require(try ManifestReader.read(Array("""
            apiVersion: dynsecret.io/v1alpha1
            kind: AdmissionPolicy
            privateRegistries: [nvcr.io, "*.example.com"]
            mode: enforce
            enforceNamespaces: [prod]
            """.utf8), source: "p.yaml").first)
        let p = try AdmissionPolicy.decode(doc.value)
        #expect(p.privateRegistries == ["nvcr.io", "*.example.com"] && p.defaultMode == .enforce && p.enforceNamespaces == ["prod"])
        #expect(p.excludeNamespaces == AdmissionPolicy.systemNamespaces)
        #expect(throws: ManifestError.self) { try AdmissionPolicy.decode(try JSONParser.parse(#"{"apiVersion":"dynsecret.io/v1alpha1","kind":"AdmissionPolicy","mode":"audit"}"#)) }
    }
}
