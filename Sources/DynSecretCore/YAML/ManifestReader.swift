internal import Yams

/// One YAML or JSON document of a manifest source.
public struct ManifestDocument: Sendable, Equatable {
    /// File path or `-` for standard input.
    public var source: String
    /// 1-based position among the source's documents (empty documents keep their number).
    public var index: Int
    /// 1-based line where the document starts.
    public var line: Int
    public var value: JSONValue
}

/// Reads Kubernetes manifests: YAML (several documents) or JSON (one or more values).
///
/// Scalars resolve as kubectl's YAML reader does (YAML 1.1: `yes`/`no`/`on`/`off` are booleans),
/// duplicate mapping keys are an error, and empty documents are skipped.
public enum ManifestReader {
    public static func read(_ bytes: [UInt8], source: String) throws(ManifestError) -> [ManifestDocument] {
        var start = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }
        while start < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[start]) { start += 1 }
        if start < bytes.count, bytes[start] == UInt8(ascii: "{") || bytes[start] == UInt8(ascii: "[") {
            return try readJSONStream(bytes, source: source)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ManifestError("not valid UTF-8 text", source: source)
        }
        return try readYAML(text, source: source)
    }

    private static func readJSONStream(_ bytes: [UInt8], source: String) throws(ManifestError) -> [ManifestDocument] {
        // A single value is the common case; concatenated values (as `kubectl get -o json` loops print) also work.
        do {
            return [ManifestDocument(source: source, index: 1, line: 1, value: try JSONParser.parse(bytes))]
        } catch let first {
            guard first.message == "unexpected data after the top-level value" else {
                throw ManifestError(first.message, source: source, document: 1, line: first.line)
            }
        }
        var docs: [ManifestDocument] = []
        var offset = 0
        while offset < bytes.count {
            let (end, line) = valueEnd(bytes, from: offset)
            guard let end else { break }
            let slice = Array(bytes[offset..<end])
            do {
                let value = try JSONParser.parse(slice)
                docs.append(ManifestDocument(source: source, index: docs.count + 1, line: line, value: value))
            } catch {
                throw ManifestError(error.message, source: source, document: docs.count + 1, line: line + error.line - 1)
            }
            offset = end
        }
        return docs
    }

    /// The end offset of the JSON value starting at or after `from` (found by bracket matching), and its line.
    private static func valueEnd(_ b: [UInt8], from: Int) -> (Int?, Int) {
        var i = from
        while i < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[i]) { i += 1 }
        let line = b[0..<i].reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        guard i < b.count else { return (nil, line) }
        var depth = 0
        var inString = false
        var escaped = false
        while i < b.count {
            let c = b[i]
            i += 1
            if inString {
                if escaped { escaped = false } else if c == 0x5C { escaped = true } else if c == 0x22 { inString = false }
                continue
            }
            switch c {
            case 0x22: inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return (i, line) }
            default:
                if depth == 0 && (c == 0x20 || c == 0x0A || c == 0x09 || c == 0x0D) { return (i, line) }
            }
        }
        return (b.count, line)
    }

    private static func readYAML(_ text: String, source: String) throws(ManifestError) -> [ManifestDocument] {
        var docs: [ManifestDocument] = []
        var index = 0
        do {
            let parser = try Parser(yaml: text, resolver: .basic, constructor: .default, encoding: .utf8)
            while let node = try parser.nextRoot() {
                index += 1
                let line = node.mark?.line ?? 1
                let value = try convert(node, path: "")
                if case .null = value { continue }
                docs.append(ManifestDocument(source: source, index: index, line: line, value: value))
            }
        } catch let error as ManifestError {
            throw error.located(source: source, document: index)
        } catch let error as YamlError {
            throw yamlError(error, source: source, document: index + 1)
        } catch {
            throw ManifestError("\(error)", source: source, document: index)
        }
        return docs
    }

    private static func yamlError(_ error: YamlError, source: String, document: Int) -> ManifestError {
        switch error {
        // Only libyaml's own context strings and positions are used: the YAML text may hold secrets.
        case .scanner(let context, let problem, let mark, _):
            return ManifestError(join(context?.text, problem), source: source, document: document, line: mark.line)
        case .parser(let context, let problem, let mark, _):
            return ManifestError(join(context?.text, problem), source: source, document: document, line: mark.line)
        case .composer(let context, let problem, let mark, _):
            return ManifestError(join(context?.text, problem), source: source, document: document, line: mark.line)
        case .duplicatedKeysInMapping(let keys, let context):
            let names = keys.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
            return ManifestError("duplicate mapping key \(names)", source: source, document: document, line: context.mark.line)
        case .reader(let problem, _, _, _):
            return ManifestError("invalid YAML: " + problem, source: source, document: document)
        default:
            return ManifestError("invalid YAML", source: source, document: document)
        }
    }

    private static func join(_ context: String?, _ problem: String) -> String {
        let p = "invalid YAML: " + problem
        guard let context, !context.isEmpty else { return p }
        return p + " (" + context + ")"
    }

    private static func convert(_ node: Node, path: String) throws(ManifestError) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            return resolve(scalar)
        case .sequence(let seq):
            var items: [JSONValue] = []
            items.reserveCapacity(seq.count)
            for (i, item) in seq.enumerated() {
                items.append(try convert(item, path: path + "[\(i)]"))
            }
            return .array(items)
        case .mapping(let mapping):
            var object = JSONObject()
            for (k, v) in mapping {
                let key: String
                switch k {
                case .scalar(let s): key = s.string
                default:
                    throw ManifestError("mapping keys must be scalars", line: k.mark?.line, field: path.isEmpty ? nil : path)
                }
                let childPath = path.isEmpty ? key : path + "." + key
                if object[key] != nil {
                    throw ManifestError("duplicate key \"\(key)\"", line: k.mark?.line, field: path.isEmpty ? nil : path)
                }
                object.appendUnchecked(key, try convert(v, path: childPath))
            }
            return .object(object)
        case .alias:
            throw ManifestError("unresolved YAML alias", line: node.mark?.line, field: path.isEmpty ? nil : path)
        }
    }

    /// Resolves a scalar as go-yaml v2 does for untyped values.
    static func resolve(_ scalar: Node.Scalar) -> JSONValue {
        let s = scalar.string
        if scalar.style != .plain && scalar.style != .any { return .string(s) }
        switch scalar.tag.description {
        case "tag:yaml.org,2002:str", "!": return .string(s)
        default: break
        }
        switch s {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON": return .bool(true)
        case "false", "False", "FALSE", "n", "N", "no", "No", "NO", "off", "Off", "OFF": return .bool(false)
        default: break
        }
        if let n = number(s) { return .number(n) }
        return .string(s)
    }

    /// The JSON number text for a YAML int or float scalar, or nil.
    static func number(_ s: String) -> String? {
        var t = Substring(s)
        var sign = ""
        if let f = t.first, f == "-" || f == "+" {
            if f == "-" { sign = "-" }
            t = t.dropFirst()
        }
        guard let first = t.first else { return nil }
        if t.hasPrefix("0x") || t.hasPrefix("0o") || t.hasPrefix("0b") {
            let radix = t.hasPrefix("0x") ? 16 : (t.hasPrefix("0o") ? 8 : 2)
            let digits = t.dropFirst(2).filter { $0 != "_" }
            guard !digits.isEmpty, let v = UInt64(digits, radix: radix) else { return nil }
            return sign + String(v)
        }
        if first == "0", t.count > 1, t.allSatisfy({ ("0"..."7").contains($0) || $0 == "_" }) {
            guard let v = UInt64(t.filter { $0 != "_" }, radix: 8) else { return nil }
            return sign + String(v)
        }
        let plain = t.filter { $0 != "_" }
        // Integer: 0 or [1-9][0-9]*
        if plain.allSatisfy(\.isASCIIDigit) {
            if plain.count > 1 && plain.first == "0" { return nil }
            return sign + plain
        }
        // Float: digits with '.' and/or exponent; JSON needs a digit on both sides of '.'.
        var mantissa = plain
        var exponent = ""
        if let e = plain.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = String(plain[..<e])
            exponent = String(plain[plain.index(after: e)...])
            var ed = Substring(exponent)
            if let f = ed.first, f == "+" || f == "-" { ed = ed.dropFirst() }
            guard !ed.isEmpty, ed.allSatisfy(\.isASCIIDigit) else { return nil }
        }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy({ $0.allSatisfy(\.isASCIIDigit) }) else { return nil }
        let intPart = parts[0].isEmpty ? "0" : String(parts[0])
        let fracPart = parts.count == 2 ? String(parts[1]) : ""
        guard !(parts[0].isEmpty && fracPart.isEmpty) else { return nil }
        guard parts.count == 2 || !exponent.isEmpty else { return nil }
        var out = sign + intPart
        if !fracPart.isEmpty { out += "." + fracPart }
        if !exponent.isEmpty { out += "e" + exponent }
        return out
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
