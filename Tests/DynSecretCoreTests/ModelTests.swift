import Testing
@testable import DynSecretCore

@Suite struct KubeNamesTests {
    @Test(arguments: ["a", "regcred", "my.reg", "a-b.c-d", "0abc", String(repeating: "a", count: 63) + "." + String(repeating: "b", count: 189)])
    func validSubdomains(name: String) {
        #expect(KubeNames.dns1123SubdomainProblems(name).isEmpty)
    }

    @Test(arguments: ["Bad_Name", "-a", "a-", "a..b", ".a", "A", "a b", "ü", String(repeating: "a", count: 254)])
    func invalidSubdomains(name: String) {
        #expect(!KubeNames.dns1123SubdomainProblems(name).isEmpty)
    }

    @Test func apiServerWording() {
        let errors = KubeNames.objectNameErrors(name: "Bad_Name", namespace: nil)
        #expect(KubeNames.invalidMessage(kind: "Secret", name: "Bad_Name", errors: errors) ==
            #"Secret "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#)
        #expect(KubeNames.objectNameErrors(name: nil, namespace: nil) == ["metadata.name: Required value: name or generateName is required"])
        let long = String(repeating: "a", count: 254)
        #expect(KubeNames.objectNameErrors(name: long, namespace: nil) == [#"metadata.name: Invalid value: "\#(long)": must be no more than 253 characters"#])
        #expect(KubeNames.objectNameErrors(name: "ok", namespace: "team.a").count == 1)
        #expect(KubeNames.objectNameErrors(name: "ok", namespace: String(repeating: "n", count: 64)) ==
            [#"metadata.namespace: Invalid value: "\#(String(repeating: "n", count: 64))": must be no more than 63 characters"#])
    }
}

@Suite struct SecretModelTests {
    @Test func decodeReportsFieldPaths() throws {
        func error(_ json: String) -> ManifestError? {
            do {
                _ = try Secret.decode(try JSONParser.parse(json))
                return nil
            } catch let e as ManifestError {
                return e
            } catch {
                return nil
            }
        }
        #expect(error(#"{"kind":"ConfigMap","apiVersion":"v1"}"#)?.field == "kind")
        #expect(error(#"{"kind":"Secret","apiVersion":"v2"}"#)?.field == "apiVersion")
        #expect(error(#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":5}}"#)?.field == "metadata.name")
        #expect(error(#"{"kind":"Secret","apiVersion":"v1","metadata":{"labels":{"a":1}}}"#)?.field == "metadata.labels[a]")
        #expect(error(#"{"kind":"Secret","apiVersion":"v1","data":{"k":"%%%"}}"#)?.field == "data[k]")
        #expect(error(#"{"kind":"Secret","apiVersion":"v1","immutable":"yes"}"#)?.field == "immutable")
    }

    @Test func unknownFieldsAreReported() throws {
        let v = try JSONParser.parse(#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"a","nmae":"b"},"dat":{}}"#)
        #expect(try Secret.decode(v).unknownFields == ["metadata.nmae", "dat"])
    }

    @Test func stringDataMergesOverData() throws {
        let v = try JSONParser.parse(#"{"kind":"Secret","apiVersion":"v1","data":{"a":"eA==","b":"eQ=="},"stringData":{"b":"z"}}"#)
        let s = try Secret.decode(v).secret
        #expect(s.mergedData == ["a": Array("x".utf8), "b": Array("z".utf8)])
        #expect(s.effectiveType == "Opaque")
    }

    @Test func roundTripKeepsEverything() throws {
        var meta = ObjectMeta(name: "s", namespace: "ns", labels: ["b": "2", "a": "1"], annotations: ["x": "y"])
        meta.uid = "0f0e"
        meta.resourceVersion = "42"
        meta.finalizers = ["f"]
        meta.ownerReferences = [.object(JSONObject([("kind", .string("Deployment"))]))]
        let secret = Secret(metadata: meta, type: SecretType.tls, data: ["tls.crt": [1, 2], "tls.key": []], stringData: ["n": "v"], immutable: true)
        let again = try Secret.decode(try JSONParser.parse(secret.jsonText))
        #expect(again.secret == secret && again.unknownFields.isEmpty)
        let fromYAML = try Secret.decode(try #require(try ManifestReader.read(Array(secret.yamlText.utf8), source: "t").first).value)
        #expect(fromYAML.secret == secret)
    }
}
