import Testing
@testable import DynSecretCore

/// Research C: the API server's per-type rules and wording, through `Validator`.
@Suite struct SecretRulesTests {
    static func findings(_ yaml: String, now: Int64 = 1_800_000_000) throws -> [Finding] {
        let docs = try ManifestReader.read(Array(yaml.utf8), source: "t.yaml")
        return Validator(options: ValidationOptions(now: now), inspector: nil).validate(docs).findings
    }

    static func secret(type: String, data: String = "{}", extra: String = "") -> String {
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns\(extra)}\ntype: \(type)\nstringData: \(data)\n"
    }

    /// (type, stringData, expected "field: message" of API-server rules)
    @Test(arguments: [
        ("Opaque", "{}", [String]()),
        ("example.com/anything", "{}", []),
        ("kubernetes.io/dockercfg", "{}", ["data[.dockercfg]: Required value"]),
        ("kubernetes.io/dockerconfigjson", "{}", ["data[.dockerconfigjson]: Required value"]),
        ("kubernetes.io/dockerconfigjson", #"{".dockerconfigjson": "[]"}"#,
         [#"data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": json: cannot unmarshal array into Go value of type map[string]interface {}"#]),
        ("kubernetes.io/basic-auth", "{}", ["data[username]: Required value", "data[password]: Required value"]),
        ("kubernetes.io/basic-auth", #"{"username": ""}"#, []),
        ("kubernetes.io/ssh-auth", "{}", ["data[ssh-privatekey]: Required value"]),
        ("kubernetes.io/ssh-auth", #"{"ssh-privatekey": ""}"#, ["data[ssh-privatekey]: Required value"]),
        ("kubernetes.io/tls", "{}", ["data[tls.crt]: Required value", "data[tls.key]: Required value"]),
        ("kubernetes.io/tls", #"{"tls.crt": "", "tls.key": ""}"#, []),
        ("kubernetes.io/service-account-token", "{}", ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]),
    ])
    func perType(type: String, data: String, expected: [String]) throws {
        let apiRules: Set<String> = ["secret-required-key", "secret-payload-json", "secret-required-annotation", "secret-key", "secret-size", "secret-name"]
        let got = try Self.findings(Self.secret(type: type, data: data)).filter { apiRules.contains($0.rule) }.map { "\($0.field ?? ""): \($0.message)" }
        #expect(got == expected)
    }

    /// The API server's ObjectMeta rule: all annotations together at most 256 KiB (keys and values).
    @Test func annotationsOver256KiBAreAnError() throws {
        let at = String(repeating: "a", count: SecretAPIRules.maxAnnotationBytes - 4)  // key "note" + value
        let ok = try Self.findings(Self.secret(type: "Opaque", extra: ", annotations: {note: \(at)}")).filter { $0.rule == "annotations-size" }
        #expect(ok.isEmpty)
        let over = try Self.findings(Self.secret(type: "Opaque", extra: ", annotations: {note: \(at)a}")).filter { $0.rule == "annotations-size" }
        #expect(over.map { "\($0.field ?? ""): \($0.message)" } == ["metadata.annotations: Too long: may not be more than 262144 bytes"])
    }

    @Test func dockerConfigJSONNullAndEmptyPassTheAPIServer() throws {
        for payload in ["null", "{}"] {
            let f = try Self.findings(Self.secret(type: "kubernetes.io/dockerconfigjson", data: #"{".dockerconfigjson": "\#(payload)"}"#))
            #expect(!f.contains { $0.rule == "secret-payload-json" })
            #expect(f.contains { $0.rule == "pull-secret-no-credentials" })  // but the kubelet gets nothing from them
        }
    }

    @Test func serviceAccountAnnotationSatisfies() throws {
        let yaml = Self.secret(type: "kubernetes.io/service-account-token", extra: ", annotations: {kubernetes.io/service-account.name: default}")
        #expect(try Self.findings(yaml).isEmpty)
    }

    @Test func sizeLimitCountsValuesNotKeys() throws {
        let exactly = String(repeating: "a", count: 1_048_576)
        #expect(try Self.findings(Self.secret(type: "Opaque", data: "{k: \(exactly)}")).isEmpty)
        let over = try Self.findings(Self.secret(type: "Opaque", data: "{k: \(exactly), l: b}"))
        #expect(over.map { "\($0.field ?? ""): \($0.message)" } == ["data: Too long: may not be more than 1048576 bytes"])
    }

    @Test func stringDataOverridesData() throws {
        // data has a bad payload, stringData replaces it with a good one: the API server stores the merge.
        let yaml = """
            apiVersion: v1
            kind: Secret
            metadata: {name: s}
            type: kubernetes.io/dockerconfigjson
            data: {.dockerconfigjson: W10=}
            stringData: {.dockerconfigjson: '{"auths":{"r.io":{"auth":"dTpw"}}}'}
            """
        #expect(try Self.findings(yaml).isEmpty)
    }

    @Test(arguments: ["bootstrap.kubernetes.io/token"])
    func bootstrapTokenHasNoAPICheckButDeepChecks(type: String) throws {
        let f = try Self.findings(Self.secret(type: type))
        #expect(!f.contains { $0.rule.hasPrefix("secret-") })
        #expect(f.contains { $0.rule == "bootstrap-token" && $0.field == "data[token-id]" && $0.message == "Required value" })
    }

    @Test(arguments: [("system:bootstrappers:kubeadm:default-node-token", true), ("system:bootstrappers:", false),
                      ("system:bootstrappers:a-", false), ("system:masters", false), ("system:bootstrappers:x", true)])
    func bootstrapGroups(group: String, valid: Bool) {
        #expect(Validator.validBootstrapGroup(group) == valid)
    }

    @Test(arguments: [("2026-11-26T15:00:00Z", 1_795_705_200), ("2026-11-26T16:00:00+01:00", 1_795_705_200),
                      ("1970-01-01T00:00:00.123Z", 0), ("2000-02-29T00:00:00Z", 951_782_400)])
    func rfc3339(text: String, seconds: Int64) {
        #expect(RFC3339.parse(text) == seconds)
        #expect(RFC3339.parse(RFC3339.format(seconds)) == seconds)
    }

    @Test(arguments: ["2026-02-30T00:00:00Z", "2026-11-26 15:00:00Z", "2026-11-26T15:00:00", "yesterday"])
    func rfc3339Rejects(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }
}
