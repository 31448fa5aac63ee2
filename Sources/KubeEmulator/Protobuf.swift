internal import DynSecretCore

/// A minimal reader for the Kubernetes protobuf encoding of the kinds kubectl sends as protobuf
/// (`create secret`, `create configmap`, `create namespace`, `create serviceaccount`): the `k8s\0` envelope holding a
/// `runtime.Unknown`, whose `raw` is the object's generated message. Field numbers follow
/// k8s.io/api core/v1 `generated.proto` and apimachinery `meta/v1` / `runtime`.
enum KubeProtobuf {
    static let magic: [UInt8] = [0x6B, 0x38, 0x73, 0x00]

    struct Field {
        var number: Int
        var varint: UInt64 = 0
        var bytes: ArraySlice<UInt8> = []
    }

    /// Decodes an envelope into a JSON object for the kinds served.
    static func decode(_ body: [UInt8]) throws(APIError) -> JSONValue {
        guard body.count >= 4, Array(body.prefix(4)) == magic else {
            throw APIError.badRequest("protobuf body does not start with the Kubernetes magic number")
        }
        var apiVersion = ""
        var kind = ""
        var raw: ArraySlice<UInt8> = []
        for f in try fields(body[4...]) {
            switch f.number {
            case 1:
                for t in try fields(f.bytes) {
                    if t.number == 1 { apiVersion = string(t.bytes) } else if t.number == 2 { kind = string(t.bytes) }
                }
            case 2: raw = f.bytes
            default: break
            }
        }
        var o = JSONObject([("kind", .string(kind)), ("apiVersion", .string(apiVersion))])
        let top = try fields(raw)
        for f in top where f.number == 1 { o["metadata"] = .object(try objectMeta(f.bytes)) }
        switch kind {
        case "Secret":
            var data = JSONObject()
            var stringData = JSONObject()
            for f in top {
                switch f.number {
                case 2: let (k, v) = try mapEntry(f.bytes); data[k] = .string(Base64.encode(v))
                case 3: o["type"] = .string(string(f.bytes))
                case 4: let (k, v) = try mapEntry(f.bytes); stringData[k] = .string(string(v))
                case 5: o["immutable"] = .bool(f.varint != 0)
                default: break
                }
            }
            if !data.isEmpty { o["data"] = .object(data) }
            if !stringData.isEmpty { o["stringData"] = .object(stringData) }
        case "ConfigMap":
            // k8s.io/api core/v1 ConfigMap: 2 data (map<string,string>), 3 binaryData (map<string,bytes>), 4 immutable.
            var data = JSONObject()
            var binary = JSONObject()
            for f in top {
                switch f.number {
                case 2: let (k, v) = try mapEntry(f.bytes); data[k] = .string(string(v))
                case 3: let (k, v) = try mapEntry(f.bytes); binary[k] = .string(Base64.encode(v))
                case 4: o["immutable"] = .bool(f.varint != 0)
                default: break
                }
            }
            if !data.isEmpty { o["data"] = .object(data) }
            if !binary.isEmpty { o["binaryData"] = .object(binary) }
        case "Namespace":
            for f in top {
                if f.number == 2 {
                    let fin = try fields(f.bytes).filter { $0.number == 1 }.map { JSONValue.string(string($0.bytes)) }
                    if !fin.isEmpty { o["spec"] = .object(JSONObject([("finalizers", .array(fin))])) }
                }
            }
        case "ServiceAccount":
            var secrets: [JSONValue] = []
            var pulls: [JSONValue] = []
            for f in top {
                switch f.number {
                case 2:
                    var ref = JSONObject()
                    for r in try fields(f.bytes) {
                        let names = [1: "kind", 2: "namespace", 3: "name", 4: "uid", 5: "apiVersion", 6: "resourceVersion", 7: "fieldPath"]
                        if let n = names[r.number] { ref[n] = .string(string(r.bytes)) }
                    }
                    secrets.append(.object(ref))
                case 3:
                    let name = try fields(f.bytes).first { $0.number == 1 }.map { string($0.bytes) } ?? ""
                    pulls.append(.object(JSONObject([("name", .string(name))])))
                case 4: o["automountServiceAccountToken"] = .bool(f.varint != 0)
                default: break
                }
            }
            if !secrets.isEmpty { o["secrets"] = .array(secrets) }
            if !pulls.isEmpty { o["imagePullSecrets"] = .array(pulls) }
        default:
            throw APIError(code: 415, reason: "UnsupportedMediaType", message: "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")
        }
        return .object(o)
    }

    static func objectMeta(_ bytes: ArraySlice<UInt8>) throws(APIError) -> JSONObject {
        var m = JSONObject()
        var labels = JSONObject()
        var annotations = JSONObject()
        var finalizers: [JSONValue] = []
        for f in try fields(bytes) {
            switch f.number {
            case 1: m["name"] = .string(string(f.bytes))
            case 2: m["generateName"] = .string(string(f.bytes))
            case 3: m["namespace"] = .string(string(f.bytes))
            case 5: m["uid"] = .string(string(f.bytes))
            case 6: m["resourceVersion"] = .string(string(f.bytes))
            case 11: let (k, v) = try mapEntry(f.bytes); labels[k] = .string(string(v))
            case 12: let (k, v) = try mapEntry(f.bytes); annotations[k] = .string(string(v))
            case 14: finalizers.append(.string(string(f.bytes)))
            default: break
            }
        }
        // Go's protobuf marshaller writes empty strings for unset name/namespace: drop them.
        for k in ["name", "generateName", "namespace", "uid", "resourceVersion"] where m[k]?.stringValue == "" { m[k] = nil }
        if !labels.isEmpty { m["labels"] = .object(labels) }
        if !annotations.isEmpty { m["annotations"] = .object(annotations) }
        if !finalizers.isEmpty { m["finalizers"] = .array(finalizers) }
        return m
    }

    static func mapEntry(_ bytes: ArraySlice<UInt8>) throws(APIError) -> (String, [UInt8]) {
        var k = ""
        var v: [UInt8] = []
        for f in try fields(bytes) {
            if f.number == 1 { k = string(f.bytes) } else if f.number == 2 { v = Array(f.bytes) }
        }
        return (k, v)
    }

    static func string<S: Collection>(_ b: S) -> String where S.Element == UInt8 { String(decoding: b, as: UTF8.self) }

    static func fields(_ bytes: ArraySlice<UInt8>) throws(APIError) -> [Field] {
        var out: [Field] = []
        var i = bytes.startIndex
        func varint() throws(APIError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard i < bytes.endIndex, shift < 64 else { throw APIError.badRequest("truncated protobuf body") }
                let b = bytes[i]
                i += 1
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
            }
        }
        while i < bytes.endIndex {
            let key = try varint()
            var f = Field(number: Int(key >> 3))
            switch key & 7 {
            case 0: f.varint = try varint()
            case 1:
                guard bytes.endIndex - i >= 8 else { throw APIError.badRequest("truncated protobuf body") }
                i += 8
            case 2:
                let n = try varint()
                guard n <= UInt64(bytes.endIndex - i) else { throw APIError.badRequest("truncated protobuf body") }
                f.bytes = bytes[i..<(i + Int(n))]
                i += Int(n)
            case 5:
                guard bytes.endIndex - i >= 4 else { throw APIError.badRequest("truncated protobuf body") }
                i += 4
            default:
                throw APIError.badRequest("unsupported protobuf wire type \(key & 7)")
            }
            out.append(f)
        }
        return out
    }
}
