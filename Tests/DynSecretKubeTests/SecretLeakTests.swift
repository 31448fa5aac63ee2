import DynSecretCore
import DynSecretKube
import Foundation
import KubeEmulator
import Testing

/// A value planted in secrets and credentials; it must never appear in an error or a description.
let canary = "CANARY-7f3a9c1e-do-not-print"

@Suite struct SecretLeakTests {
    func everything(_ e: KubeError) -> String {
        var parts = [e.message, String(describing: e), String(reflecting: e)]
        if let s = e.status { parts += [s.message, s.reason] + s.causes.flatMap { [$0.field, $0.message] } }
        return parts.joined(separator: "\n")
    }

    @Test func rejectedSecretValuesNeverAppearInErrors() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        let c = client(e)
        // Not a JSON object: the API server's error redacts the contents.
        var s = secret("reg", data: [".dockerconfigjson": "[\"\(canary)\"]"]).objectValue!
        s["type"] = .string("kubernetes.io/dockerconfigjson")
        do {
            _ = try await c.create(.secrets, .object(s))
            Issue.record("invalid secret accepted")
        } catch {
            #expect(error.httpStatus == 422)
            #expect(error.message.contains("<secret contents redacted>"))
            #expect(!everything(error).contains(canary))
        }
        // A stale update and a duplicate create of a Secret holding the canary.
        let created = try await c.create(.secrets, secret("held", data: ["password": canary]))
        _ = try await c.mergePatch(.secrets, name: "held", .object(JSONObject([("metadata", .object(JSONObject([("labels", .object(JSONObject([("x", .string("y"))])))])))])))
        var again = created.objectValue!
        var meta = again["metadata"]!.objectValue!
        meta["resourceVersion"] = nil
        again["metadata"] = .object(meta)
        // A stale update and a duplicate create answer 409; a create that still carries the resourceVersion it was
        // read with answers 500 (the API server's storage check), before any existence check.
        for (attempt, status) in [(0, 409), (1, 409), (2, 500)] {
            do {
                switch attempt {
                case 0: _ = try await c.update(.secrets, created)
                case 1: _ = try await c.create(.secrets, .object(again))
                default: _ = try await c.create(.secrets, created)
                }
                Issue.record("stale write accepted")
            } catch {
                #expect(error.httpStatus == status)
                if status == 500 { #expect(error.message.contains("resourceVersion should not be set on objects to be created"), "\(error.message)") }
                #expect(!everything(error).contains(canary))
                #expect(!everything(error).contains(Base64.encode(Array(canary.utf8))))
            }
        }
    }

    @Test func tokensNeverAppearInErrorsOrRequestDescriptions() async throws {
        let e = try await startEmulator()
        defer { Task { await e.stop() } }
        do {
            _ = try await client(e, token: canary).list(.secrets, namespace: "default")
            Issue.record("unknown token accepted")
        } catch {
            #expect(error.httpStatus == 401)
            #expect(!everything(error).contains(canary))
        }
        var retry = RetryPolicy()
        retry.maxAttempts = 1
        let url = e.url
        await e.stop()
        do {
            _ = try await KubeClient(config: KubeConfig(server: url, credentials: .token(canary)), retry: retry).list(.namespaces)
            Issue.record("closed port answered")
        } catch {
            #expect(!everything(error).contains(canary))
        }
        let request = HTTPRequest(method: "POST", url: "https://127.0.0.1/api/v1/secrets?labelSelector=a", headers: [("Authorization", "Bearer \(canary)")], body: Array(canary.utf8))
        #expect(!String(describing: request).contains(canary))
        #expect(!String(reflecting: request).contains(canary))
    }
}

@Suite struct ConfigurationRedactionTests {
    @Test func printingAConfigurationNeverShowsTheTokenOrKey() {
        var transport = TransportSettings()
        transport.clientKeyPEM = Array("-----BEGIN PRIVATE KEY-----\nCANARY-key-b71\n-----END PRIVATE KEY-----\n".utf8)
        let config = KubeConfig(server: "https://127.0.0.1:6443", transport: transport, credentials: .token("CANARY-token-b71"))
        var dumped = ""
        dump(config, to: &dumped)
        for (form, text) in [("description", String(describing: config)), ("interpolation", "\(config)"), ("debugDescription", String(reflecting: config)), ("dump", dumped)] {
            // Computed outside #expect, so a failure names the form without printing what leaked.
            let leaked = text.contains("CANARY")
            #expect(!leaked, "the configuration's \(form) shows the token or key")
            #expect(text.contains("127.0.0.1:6443"))
        }
    }
}
