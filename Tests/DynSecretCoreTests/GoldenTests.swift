import Foundation
import Testing
@testable import DynSecretCore

/// Emitter output compared byte for byte with files kubectl produced (see Golden/regenerate.sh).
@Suite struct GoldenTests {
    static func golden(_ name: String) throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: "Golden/" + name, withExtension: nil))
        return Array(try Data(contentsOf: url))
    }

    static func secret(_ name: String) throws -> Secret {
        let doc = try #require(try ManifestReader.read(golden(name), source: name).first)
        let decoded = try Secret.decode(doc.value)
        #expect(decoded.unknownFields.isEmpty)
        return decoded.secret
    }

    @Test func typedJSONMatchesKubectl() throws {
        let secret = try Self.secret("opaque.json")
        #expect(String(decoding: secret.jsonText, as: UTF8.self) == String(decoding: try Self.golden("opaque.json"), as: UTF8.self))
    }

    @Test func typedYAMLMatchesKubectl() throws {
        let secret = try Self.secret("opaque.json")
        #expect(secret.yamlText == String(decoding: try Self.golden("opaque.yaml"), as: UTF8.self))
    }

    @Test func yamlReadBackEqualsJSON() throws {
        #expect(try Self.secret("opaque.yaml") == Self.secret("opaque.json"))
        #expect(try Self.secret("annotated.yaml") == Self.secret("annotated.json"))
    }

    @Test func quotingAndKeyOrderMatchKubectl() throws {
        let secret = try Self.secret("annotated.json")
        #expect(secret.yamlText == String(decoding: try Self.golden("annotated.yaml"), as: UTF8.self))
    }

    @Test func pullSecretA1() throws {
        var config = DockerConfigJSON()
        config.set(RegistryCredential(username: "alice", password: "s3cret", email: "alice@example.com"), for: "registry.example.com")
        let secret = config.secret(name: "regcred", namespace: nil)
        #expect(secret.jsonText == (try Self.golden("docker-a1.json")))
    }

    @Test func pullSecretA9Escaping() throws {
        var config = DockerConfigJSON()
        config.set(RegistryCredential(username: "alice", password: "<>&\"\\x"), for: RegistryServer.dockerHubKey)
        #expect(config.secret(name: "regcred", namespace: nil).jsonText == (try Self.golden("docker-a9.json")))
    }

    @Test func pullSecretUnicodeYAML() throws {
        var config = DockerConfigJSON()
        config.set(RegistryCredential(username: "ålice", password: "pässwörd✓日本"), for: "https://registry.example.com:5000/v2/")
        let yaml = config.secret(name: "pull.secret", namespace: "team-a").yamlText
        #expect(yaml == String(decoding: try Self.golden("docker-unicode.yaml"), as: UTF8.self))
    }
}
