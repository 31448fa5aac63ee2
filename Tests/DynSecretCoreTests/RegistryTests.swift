import Testing
@testable import DynSecretCore

@Suite struct RegistryServerTests {
    @Test(arguments: [
        // Docker Hub aliases become the Docker CLI's key.
        ("docker.io", "https://index.docker.io/v1/"),
        ("index.docker.io", "https://index.docker.io/v1/"),
        ("registry-1.docker.io", "https://index.docker.io/v1/"),
        ("https://docker.io", "https://index.docker.io/v1/"),
        ("http://index.docker.io/", "https://index.docker.io/v1/"),
        ("https://index.docker.io/v1/", "https://index.docker.io/v1/"),
        ("https://registry-1.docker.io/v2/", "https://index.docker.io/v1/"),
        ("DOCKER.IO", "https://index.docker.io/v1/"),
        // Organisation-scoped Docker Hub credentials must be written docker.io/ORG to match ORG/IMAGE.
        ("docker.io/myorg", "docker.io/myorg"),
        ("https://index.docker.io/v1/myorg", "docker.io/myorg"),
        ("registry-1.docker.io/myorg/", "docker.io/myorg"),
        // Everything else is kept exactly as typed, as kubectl does.
        ("registry.example.com", "registry.example.com"),
        ("https://registry.example.com:5000/v2/", "https://registry.example.com:5000/v2/"),
        ("http://localhost:5000", "http://localhost:5000"),
        ("nvcr.io", "nvcr.io"),
        ("*.azurecr.io", "*.azurecr.io"),
        ("docker.io.evil.example", "docker.io.evil.example"),
        ("[::1]:5000", "[::1]:5000"),
    ])
    func authKey(server: String, key: String) throws {
        #expect(try RegistryServer.authKey(for: server) == key)
    }

    @Test(arguments: ["", " ", "registry example.com", "ftp://registry.example.com", "registry.example.com:99999", "registry.example.com:abc",
                      "user:pw@registry.example.com", "https://", "registry?.example.com", "reg#istry", ":5000", "tab\there"])
    func rejects(server: String) {
        #expect(throws: ManifestError.self) { try RegistryServer.authKey(for: server) }
    }
}

@Suite struct DockerConfigTests {
    /// Research vectors A1–A10: the decoded payload and `auth`, as kubectl writes them.
    @Test(arguments: [
        ("registry.example.com", "alice", "s3cret", "alice@example.com",
         #"{"auths":{"registry.example.com":{"username":"alice","password":"s3cret","email":"alice@example.com","auth":"YWxpY2U6czNjcmV0"}}}"#),
        ("registry.example.com", "alice", "s3cret", "",
         #"{"auths":{"registry.example.com":{"username":"alice","password":"s3cret","auth":"YWxpY2U6czNjcmV0"}}}"#),
        ("https://registry.example.com:5000/v2/", "alice", "x", "",
         #"{"auths":{"https://registry.example.com:5000/v2/":{"username":"alice","password":"x","auth":"YWxpY2U6eA=="}}}"#),
        ("r", "alice", "pässwörd✓日本", "", #"{"auths":{"r":{"username":"alice","password":"pässwörd✓日本","auth":"YWxpY2U6cMOkc3N3w7ZyZOKck+aXpeacrA=="}}}"#),
        ("r", "alice", "pa:ss:word", "", #"{"auths":{"r":{"username":"alice","password":"pa:ss:word","auth":"YWxpY2U6cGE6c3M6d29yZA=="}}}"#),
        ("r", "alice", "<>&\"\\x", "", #"{"auths":{"r":{"username":"alice","password":"\u003c\u003e\u0026\"\\x","auth":"YWxpY2U6PD4mIlx4"}}}"#),
        ("r", "ålice", "x", "", #"{"auths":{"r":{"username":"ålice","password":"x","auth":"w6VsaWNlOng="}}}"#),
    ])
    func kubectlPayload(server: String, user: String, password: String, email: String, expected: String) {
        var config = DockerConfigJSON()
        config.set(RegistryCredential(username: user, password: password, email: email), for: server)
        #expect(String(decoding: config.bytes, as: UTF8.self) == expected)
    }

    @Test func a1DataBase64() {
        var config = DockerConfigJSON()
        config.set(RegistryCredential(username: "alice", password: "s3cret", email: "alice@example.com"), for: "registry.example.com")
        let secret = config.secret(name: "regcred", namespace: nil)
        #expect(Base64.encode(secret.data[".dockerconfigjson"]!) ==
            "eyJhdXRocyI6eyJyZWdpc3RyeS5leGFtcGxlLmNvbSI6eyJ1c2VybmFtZSI6ImFsaWNlIiwicGFzc3dvcmQiOiJzM2NyZXQiLCJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIiwiYXV0aCI6IllXeHBZMlU2Y3pOamNtVjAifX19")
    }

    @Test func severalRegistriesSortedByBytes() {
        var config = DockerConfigJSON()
        let c = RegistryCredential(username: "u", password: "p")
        for key in ["nvcr.io", "ghcr.io", "Z.example", "https://index.docker.io/v1/"] { config.set(c, for: key) }
        let keys = (try? JSONParser.parse(config.bytes))?["auths"]?.objectValue?.keys
        #expect(keys == ["Z.example", "ghcr.io", "https://index.docker.io/v1/", "nvcr.io"])
    }

    @Test func parseKeepsExistingEntriesAndFields() throws {
        let text = #"{"auths":{"a.io":{"auth":"dTpw","identitytoken":"tok"}},"credHelpers":{"b.io":"x"}}"#
        var config = try DockerConfigJSON.parse(Array(text.utf8))
        config.set(RegistryCredential(username: "u", password: "p"), for: "c.io")
        #expect(String(decoding: config.bytes, as: UTF8.self) ==
            #"{"auths":{"a.io":{"auth":"dTpw","identitytoken":"tok"},"c.io":{"username":"u","password":"p","auth":"dTpw"}},"credHelpers":{"b.io":"x"}}"#)
    }

    @Test(arguments: [#"[]"#, #"{"auths":[]}"#, #"{"auths":{"a":"x"}}"#, #"not json"#])
    func parseRejects(text: String) {
        #expect(throws: ManifestError.self) { try DockerConfigJSON.parse(Array(text.utf8)) }
    }

    @Test func credentialRules() {
        #expect(throws: ManifestError.self) { try RegistryCredential(username: "us:er", password: "p").validate() }
        #expect(throws: ManifestError.self) { try RegistryCredential(username: "u", password: "").validate() }
        #expect(throws: ManifestError.self) { try RegistryCredential(username: "", password: "p").validate() }
        #expect(throws: Never.self) { try RegistryCredential(username: "$oauthtoken", password: "p:w").validate() }
    }
}

@Suite struct DockerConfigEntryTests {
    /// Research B2: the kubelet's decoding of an entry.
    @Test(arguments: [
        (#"{"username":"foo","password":"bar","email":"foo@example.com"}"#, "foo", "bar"),
        (#"{"auth":"Zm9vOmJhcg==","email":"foo@example.com"}"#, "foo", "bar"),
        (#"{"username":"foo","password":"bar","auth":"cGluZzpwb25n"}"#, "ping", "pong"),  // auth wins
        (#"{"auth":"Zm9vOmJhcg"}"#, "foo", "bar"),                                         // unpadded
        (#"{"auth":"Zm9vOmJhcjpiYXo="}"#, "foo", "bar:baz"),                               // split at first ':'
        (#"{"Username":"foo","PASSWORD":"bar"}"#, "foo", "bar"),                           // Go matches any case
        (#"{"auth":" Zm9vOmJhcg== "}"#, "foo", "bar"),
    ])
    func decodes(entry: String, user: String, password: String) throws {
        let o = try #require(try JSONParser.parse(entry).objectValue)
        let c = try #require(try DockerConfigEntry.credential(in: o))
        #expect(c.username == user && c.password == password)
    }

    @Test(arguments: [#"{"auth":"pants"}"#, #"{"auth":"cGFudHM="}"#, #"{"email":false}"#, #"{"username":1}"#])
    func rejects(entry: String) throws {
        let o = try #require(try JSONParser.parse(entry).objectValue)
        #expect(throws: ManifestError.self) { try DockerConfigEntry.credential(in: o) }
    }

    @Test func emptyEntryHasNoCredential() throws {
        #expect(try DockerConfigEntry.credential(in: JSONObject()) == nil)
    }
}

@Suite struct DockerCLIConfigImportTests {
    func read(_ text: String) throws -> DockerCLIConfigImport { try DockerCLIConfigImport.read(Array(text.utf8)) }

    @Test func importsAndNormalizes() throws {
        let r = try read(#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTE6cDE="},"ghcr.io":{"auth":"dTI6cDI="},"quay.io":{}},"credsStore":"desktop"}"#)
        #expect(r.credentials.map(\.key) == ["https://index.docker.io/v1/", "ghcr.io"])
        #expect(r.credentials[1].credential == RegistryCredential(username: "u2", password: "p2"))
        #expect(r.skipped.count == 1 && r.skipped[0].hasPrefix("quay.io"))
    }

    @Test func credsStoreOnlyIsRefusedWithReason() {
        #expect {
            try read(#"{"auths":{"ghcr.io":{}},"credsStore":"desktop"}"#)
        } throws: { e in
            (e as? ManifestError)?.message.contains("credsStore") == true
        }
        #expect {
            try read(#"{"credHelpers":{"123.dkr.ecr.us-east-1.amazonaws.com":"ecr-login"}}"#)
        } throws: { e in
            (e as? ManifestError)?.message.contains("credHelpers") == true
        }
    }

    @Test func legacyDockercfg() throws {
        let r = try read(#"{"registry.example.com":{"auth":"dTpw","email":"e@x"}}"#)
        #expect(r.credentials.first?.key == "registry.example.com")
        #expect(r.credentials.first?.credential.email == "e@x")
    }

    @Test func identityTokenOnlySkipped() {
        #expect(throws: ManifestError.self) { try read(#"{"auths":{"a.io":{"identitytoken":"t"}}}"#) }
    }

    @Test func aliasesWithDifferentCredentialsConflict() {
        #expect(throws: ManifestError.self) {
            try read(#"{"auths":{"docker.io":{"auth":"dTE6cDE="},"https://index.docker.io/v1/":{"auth":"dTI6cDI="}}}"#)
        }
    }

    @Test func aliasesWithSameCredentialsMerge() throws {
        let r = try read(#"{"auths":{"docker.io":{"auth":"dTE6cDE="},"https://index.docker.io/v1/":{"auth":"dTE6cDE="}}}"#)
        #expect(r.credentials.count == 1)
    }

    @Test func badAuthNamesTheEntry() {
        #expect {
            try read(#"{"auths":{"ghcr.io":{"auth":"pants"}}}"#)
        } throws: { e in
            (e as? ManifestError)?.field == "auths[ghcr.io].auth"
        }
    }
}
