import DynSecretCore
import Testing
@testable import KubeEmulator

@Suite struct EmulatorUnitTests {
    func labels(_ pairs: [(String, String)]) -> JSONObject { JSONObject(pairs.map { ($0.0, JSONValue.string($0.1)) }) }

    @Test(arguments: [
        ("app=web", true), ("app==web", true), ("app!=web", false), ("app in (web,api)", true), ("app notin (web)", false),
        ("tier", true), ("!tier", false), ("!missing", true), ("app in (api), tier", false), ("app=web,tier=front", true),
    ])
    func labelSelectors(selector: String, matches: Bool) throws {
        let s = try LabelQuery(selector)
        #expect(s.matches(labels([("app", "web"), ("tier", "front")])) == matches)
    }

    @Test func fieldSelectorRejectsUnsupportedLabels() {
        #expect(throws: APIError.self) { try FieldSelector("data.x=1", kind: .secret) }
        #expect(throws: APIError.self) { try FieldSelector("status.phase=Active", kind: .secret) }
        #expect((try? FieldSelector("status.phase=Active", kind: .namespace)) != nil)
    }

    @Test func strategicMergePatch() throws {
        let target = try JSONParser.parse(#"{"metadata":{"labels":{"a":"1","b":"2"}},"imagePullSecrets":[{"name":"x"},{"name":"y"}],"data":{"k":"dg=="}}"#)
        let patch = try JSONParser.parse(#"{"metadata":{"labels":{"a":null,"c":"3"}},"imagePullSecrets":[{"name":"z"},{"name":"x","$patch":"delete"}],"$setElementOrder/imagePullSecrets":[{"name":"y"},{"name":"z"}],"data":{"$patch":"replace","n":"bg=="}}"#)
        let out = try Patch.strategic(target, patch)
        #expect(GoJSONWriter.compact(out) == Array(#"{"metadata":{"labels":{"b":"2","c":"3"}},"imagePullSecrets":[{"name":"y"},{"name":"z"}],"data":{"n":"bg=="}}"#.utf8))
    }

    @Test func jsonPatch() throws {
        let target = try JSONParser.parse(#"{"metadata":{"labels":{"a":"1"}},"list":[1,2]}"#)
        let patch = try JSONParser.parse(#"[{"op":"add","path":"/metadata/labels/b~1c","value":"2"},{"op":"remove","path":"/list/0"},{"op":"replace","path":"/metadata/labels/a","value":"9"},{"op":"test","path":"/list/0","value":2}]"#)
        let out = try Patch.json(target, patch)
        #expect(GoJSONWriter.compact(out) == Array(#"{"metadata":{"labels":{"a":"9","b/c":"2"}},"list":[2]}"#.utf8))
        #expect(throws: APIError.self) { try Patch.json(target, try JSONParser.parse(#"[{"op":"remove","path":"/nope"}]"#)) }
    }

    /// A Secret in the Kubernetes protobuf envelope, encoded by hand from the generated.proto field numbers.
    @Test func protobufSecret() throws {
        func varint(_ v: Int) -> [UInt8] {
            var v = v
            var out: [UInt8] = []
            while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
            return out + [UInt8(v)]
        }
        func field(_ n: Int, _ bytes: [UInt8]) -> [UInt8] { varint(n << 3 | 2) + varint(bytes.count) + bytes }
        func str(_ n: Int, _ s: String) -> [UInt8] { field(n, Array(s.utf8)) }
        let meta = str(1, "db") + str(3, "team-a") + field(11, str(1, "app") + str(2, "web"))
        let secret = field(1, meta) + field(2, str(1, "password") + field(2, [0x00, 0xFF, 0x41])) + str(3, "Opaque") + field(4, str(1, "user") + str(2, "alice")) + varint(5 << 3) + [1]
        let unknown = field(1, str(1, "v1") + str(2, "Secret")) + field(2, secret) + str(4, "application/vnd.kubernetes.protobuf")
        let v = try KubeProtobuf.decode(KubeProtobuf.magic + unknown)
        #expect(v["kind"]?.stringValue == "Secret")
        #expect(v["metadata"]?["name"]?.stringValue == "db")
        #expect(v["metadata"]?["namespace"]?.stringValue == "team-a")
        #expect(v["metadata"]?["labels"]?["app"]?.stringValue == "web")
        #expect(v["data"]?["password"]?.stringValue == Base64.encode([0x00, 0xFF, 0x41]))
        #expect(v["stringData"]?["user"]?.stringValue == "alice")
        #expect(v["immutable"] == .bool(true))
        #expect(throws: APIError.self) { try KubeProtobuf.decode(KubeProtobuf.magic + Array(unknown.dropLast(3))) }
        #expect(throws: APIError.self) { try KubeProtobuf.decode(Array("{}".utf8)) }
    }

    static let durations: [(Double, String)] = [
        (0, "0s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (10_860, "3h1m"), (108_000, "30h"), (180_000, "2d2h"),
        (34_560_000, "400d"), (94_694_400, "3y1d"),
    ]

    @Test(arguments: durations)
    func humanDuration(seconds: Double, text: String) {
        #expect(TablePrinter.humanDuration(seconds) == text)
    }

    @Test func secretKeyRules() {
        func errors(_ key: String) -> [String] {
            SecretRules.validate(JSONObject([("apiVersion", .string("v1")), ("kind", .string("Secret")),
                                             ("data", .object(JSONObject([(key, .string("eA=="))])))]), old: nil)
        }
        #expect(errors("ok.key_-1").isEmpty)
        #expect(errors("..x") == [#"data[..x]: Invalid value: "..x": must not start with '..'"#])
        #expect(errors(".") == [#"data[.]: Invalid value: ".": must not be '.'"#])
        #expect(errors(String(repeating: "a", count: 254)).first?.hasSuffix("must be no more than 253 characters") == true)
    }

    @Test func secretUpdateRules() {
        func secret(_ type: String, immutable: Bool?, data: String) -> JSONObject {
            var o = JSONObject([("apiVersion", .string("v1")), ("kind", .string("Secret")), ("type", .string(type)),
                                ("data", .object(JSONObject([("k", .string(data))])))])
            if let immutable { o["immutable"] = .bool(immutable) }
            return o
        }
        #expect(SecretRules.validate(secret("Opaque", immutable: nil, data: "eQ=="), old: secret("example.com/x", immutable: nil, data: "eA==")) ==
            [#"type: Invalid value: "Opaque": field is immutable"#])
        #expect(SecretRules.validate(secret("Opaque", immutable: nil, data: "eQ=="), old: secret("Opaque", immutable: true, data: "eA==")) ==
            ["immutable: Forbidden: field is immutable when `immutable` is set", "data: Forbidden: field is immutable when `immutable` is set"])
        #expect(SecretRules.validate(secret("Opaque", immutable: true, data: "eA=="), old: secret("Opaque", immutable: true, data: "eA==")).isEmpty)
    }
}
