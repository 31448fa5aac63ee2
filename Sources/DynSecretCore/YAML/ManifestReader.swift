internal import Yams

/// One YAML or JSON document of a manifest source (or one item of a top-level JSON `List`).
public struct ManifestDocument: Sendable, Equatable {
    /// File path or `-` for standard input.
    public var source: String
    /// 1-based position among the source's documents (empty documents keep their number).
    public var index: Int
    /// 1-based line where the document (or list item) starts.
    public var line: Int
    public var value: JSONValue
    /// `items[N].` when the value is one item of a JSON `List` read item by item; empty otherwise.
    public var fieldPrefix: String = ""

    public init(source: String, index: Int, line: Int, value: JSONValue, fieldPrefix: String = "") {
        self.source = source
        self.index = index
        self.line = line
        self.value = value
        self.fieldPrefix = fieldPrefix
    }

    /// The objects of the document: the value itself, or the items of a `List`, each with its field-path prefix.
    public var objects: [(value: JSONValue, fieldPrefix: String)] {
        if case .object(let o) = value, let kind = o["kind"]?.stringValue, kind.hasSuffix("List"), case .array(let items)? = o["items"] {
            return items.enumerated().map { ($0.element, fieldPrefix + "items[\($0.offset)].") }
        }
        return [(value, fieldPrefix)]
    }
}

/// Reads Kubernetes manifests: YAML (several documents) or JSON (one or more values).
///
/// Scalars resolve as kubectl's YAML reader does (YAML 1.1: `yes`/`no`/`on`/`off` are booleans), duplicate
/// mapping keys are an error, and empty documents are skipped. Each document is parsed on its own, so one
/// broken document does not hide the others; documents are bounded in size (the API server's 3 MiB request
/// limit), nesting and node count, so hostile input costs bounded memory. A top-level JSON `List` is read
/// item by item. Error messages never quote the input text (it may hold secrets).
public enum ManifestReader {
    /// The largest YAML or JSON document accepted: the API server's request body limit.
    public static let maxDocumentBytes = 3 * 1024 * 1024
    static let maxDepth = 100
    static let maxNodes = 1_000_000

    /// All documents, or the first error.
    public static func read(_ bytes: [UInt8], source: String) throws(ManifestError) -> [ManifestDocument] {
        var docs: [ManifestDocument] = []
        var firstError: ManifestError?
        forEachDocument(bytes, source: source) { result in
            switch result {
            case .success(let d): docs.append(d)
            case .failure(let e): if firstError == nil { firstError = e }
            }
        }
        if let firstError { throw firstError }
        return docs
    }

    /// Calls `body` with each document or per-document error, in order.
    public static func forEachDocument(_ bytes: [UInt8], source: String, _ body: (Result<ManifestDocument, ManifestError>) -> Void) {
        for unit in units(bytes, source: source) {
            if let result = parse(unit, bytes, source: source) { body(result) }
        }
    }

    /// Parses the documents on `workers` concurrent tasks, each folding a contiguous run of documents into its
    /// own accumulator; returns the accumulators in input order (merge them in that order to keep input order).
    /// Memory stays bounded by the accumulators: parsed documents are dropped as soon as they are folded in.
    public static func reduceDocuments<Accumulator: Sendable>(
        _ bytes: [UInt8], source: String, workers: Int,
        initial: @escaping @Sendable () -> Accumulator,
        _ fold: @escaping @Sendable (inout Accumulator, Result<ManifestDocument, ManifestError>) -> Void
    ) async -> [Accumulator] {
        let all = units(bytes, source: source)
        let n = max(1, min(workers, all.count / 64 + 1))
        let chunk = (all.count + n - 1) / n
        return await withTaskGroup(of: (Int, Accumulator).self) { group in
            for w in 0..<n {
                let slice = Array(all[min(all.count, w * chunk)..<min(all.count, (w + 1) * chunk)])
                group.addTask {
                    var acc = initial()
                    for unit in slice {
                        if let result = parse(unit, bytes, source: source) { fold(&acc, result) }
                    }
                    return (w, acc)
                }
            }
            var out: [(Int, Accumulator)] = []
            for await r in group { out.append(r) }
            return out.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// A document (or list item) located in the input, not yet parsed.
    struct Unit: Sendable {
        enum Kind: Sendable {
            case json(prefix: String)
            case yaml
            case failure(ManifestError)
        }
        var range: Range<Int>
        var index: Int
        var line: Int
        var kind: Kind
    }

    static func units(_ bytes: [UInt8], source: String) -> [Unit] {
        var out: [Unit] = []
        var start = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }
        while start < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[start]) { start += 1 }
        if start < bytes.count, bytes[start] == UInt8(ascii: "{") || bytes[start] == UInt8(ascii: "[") {
            jsonUnits(bytes, from: start, source: source) { out.append($0) }
        } else if String(validating: bytes, as: UTF8.self) == nil {
            out.append(Unit(range: 0..<0, index: 1, line: 1, kind: .failure(ManifestError("not valid UTF-8 text (binary data?)", source: source))))
        } else {
            yamlUnits(bytes) { out.append($0) }
        }
        return out
    }

    static func parse(_ unit: Unit, _ bytes: [UInt8], source: String) -> Result<ManifestDocument, ManifestError>? {
        switch unit.kind {
        case .failure(let e): return .failure(e)
        case .json(let prefix): return parseJSON(bytes[unit.range], source: source, index: unit.index, line: unit.line, prefix: prefix)
        case .yaml: return parseYAMLDocument(bytes[unit.range], source: source, index: unit.index, firstLine: unit.line)
        }
    }

    // MARK: - JSON

    private static func jsonUnits(_ bytes: [UInt8], from: Int, source: String, _ emit: (Unit) -> Void) {
        var offset = from
        var index = 0
        var lines = JSONScanner.LineCounter()
        while true {
            offset = JSONScanner.skipWhitespace(bytes, offset)
            guard offset < bytes.count else { return }
            index += 1
            let line = lines.line(of: offset, in: bytes)
            if bytes[offset] == UInt8(ascii: "{"), let list = JSONScanner.listItems(bytes, offset) {
                // A List: its items one by one, each bounded like a document.
                for (i, range) in list.items.enumerated() {
                    emit(Unit(range: range, index: index, line: lines.line(of: range.lowerBound, in: bytes), kind: .json(prefix: "items[\(i)].")))
                }
                if let error = list.error {
                    emit(Unit(range: offset..<offset, index: index, line: line, kind: .failure(ManifestError(error, source: source, document: index, line: line))))
                }
                offset = list.end
                continue
            }
            guard let end = JSONScanner.valueEnd(bytes, offset) else {
                emit(Unit(range: offset..<offset, index: index, line: line, kind: .failure(ManifestError("unterminated JSON value", source: source, document: index, line: line))))
                return
            }
            emit(Unit(range: offset..<end, index: index, line: line, kind: .json(prefix: "")))
            offset = end
        }
    }

    private static func parseJSON(_ slice: ArraySlice<UInt8>, source: String, index: Int, line: Int, prefix: String) -> Result<ManifestDocument, ManifestError> {
        let field = prefix.isEmpty ? nil : String(prefix.dropLast())
        if slice.count > maxDocumentBytes {
            return .failure(ManifestError("larger than \(maxDocumentBytes) bytes, the API server's request limit", source: source, document: index, line: line, field: field))
        }
        do {
            let value = try JSONParser.parse(Array(slice))
            return .success(ManifestDocument(source: source, index: index, line: line, value: value, fieldPrefix: prefix))
        } catch {
            return .failure(ManifestError("invalid JSON: \(error.message)", source: source, document: index, line: line + error.line - 1, field: field))
        }
    }

    // MARK: - YAML

    /// Splits a YAML stream at `---` / `...` marker lines; such a line at column 0 always ends a document.
    private static func yamlUnits(_ bytes: [UInt8], _ emit: (Unit) -> Void) {
        var index = 0
        var started = false      // the current document has a number
        var hasContent = false   // it has a line that is not blank, a comment or a directive
        var docStart = 0         // byte offset where its text starts
        var docStartLine = 1     // the line that offset is on
        func flush(_ end: Int) {
            if hasContent { emit(Unit(range: docStart..<end, index: index, line: docStartLine, kind: .yaml)) }
            started = false
            hasContent = false
        }
        var lineNumber = 1
        var lineStart = 0
        while lineStart < bytes.count {
            let lineEnd = bytes[lineStart...].firstIndex(of: 0x0A) ?? bytes.count
            let line = bytes[lineStart..<lineEnd]
            let rest = line.dropFirst(3)
            let isStart = line.starts(with: "---".utf8) && (rest.isEmpty || [0x20, 0x09, 0x0D].contains(rest.first!))
            let isEnd = line.starts(with: "...".utf8) && (rest.isEmpty || [0x20, 0x09, 0x0D].contains(rest.first!))
            if isStart || isEnd {
                flush(lineStart)
                if isStart {
                    index += 1
                    started = true
                    docStart = lineStart + 3
                    docStartLine = lineNumber
                    let inline = rest.drop { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
                    hasContent = !inline.isEmpty && inline.first != UInt8(ascii: "#")
                } else {
                    docStart = min(lineEnd + 1, bytes.count)
                    docStartLine = lineNumber + 1
                }
            } else if !hasContent {
                let t = line.drop { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
                if !t.isEmpty && t.first != UInt8(ascii: "#") && t.first != UInt8(ascii: "%") {
                    hasContent = true
                    if !started {
                        index += 1
                        started = true
                    }
                }
            }
            lineNumber += 1
            lineStart = lineEnd + 1
        }
        flush(bytes.count)
    }

    private static func parseYAMLDocument(_ slice: ArraySlice<UInt8>, source: String, index: Int, firstLine: Int) -> Result<ManifestDocument, ManifestError>? {
        let line = firstLine + slice.prefix { $0 == 0x0A || $0 == 0x20 }.filter { $0 == 0x0A }.count
        if slice.count > maxDocumentBytes {
            return .failure(ManifestError("larger than \(maxDocumentBytes) bytes, the API server's request limit", source: source, document: index, line: line))
        }
        if let problem = nestingProblem(slice) {
            return .failure(ManifestError(problem, source: source, document: index, line: line))
        }
        // Yams counts lines from the slice's start, which is on `firstLine`.
        let lineOffset = firstLine - 1
        let text = String(decoding: slice, as: UTF8.self)
        do {
            let parser = try Parser(yaml: text, resolver: .basic, constructor: .default, encoding: .utf8)
            guard let node = try parser.singleRoot() else { return nil }
            var budget = maxNodes
            let value = try convert(node, path: "", depth: 0, budget: &budget)
            if case .null = value { return nil }
            let startLine = lineOffset + (node.mark?.line ?? 1)
            return .success(ManifestDocument(source: source, index: index, line: startLine, value: value))
        } catch let error as ManifestError {
            var e = error.located(source: source, document: index)
            e.line = e.line.map { $0 + lineOffset }
            return .failure(e)
        } catch let error as YamlError {
            var e = yamlError(error, source: source, document: index)
            e.line = e.line.map { $0 + lineOffset } ?? line
            return .failure(e)
        } catch {
            return .failure(ManifestError("invalid YAML", source: source, document: index, line: line))
        }
    }

    /// Rejects pathological nesting before the recursive parser sees it.
    static func nestingProblem(_ slice: ArraySlice<UInt8>) -> String? {
        var flow = 0
        var maxFlow = 0
        var inSingle = false
        var inDouble = false
        var atLineStart = true
        var indent = 0
        var dashes = 0
        var previous: UInt8 = 0x0A
        for c in slice {
            if c == 0x0A {
                atLineStart = true
                indent = 0
                dashes = 0
                inSingle = false
                previous = c
                continue
            }
            if atLineStart {
                if c == 0x20 {
                    indent += 1
                    if indent > 4 * maxDepth { return "nesting deeper than \(maxDepth) levels" }
                    previous = c
                    continue
                }
                if c == UInt8(ascii: "-") || (c == 0x20 && previous == UInt8(ascii: "-")) {
                    if c == UInt8(ascii: "-") { dashes += 1 }
                    if dashes > maxDepth { return "nesting deeper than \(maxDepth) levels" }
                    previous = c
                    continue
                }
                atLineStart = false
            }
            if inDouble {
                if c == UInt8(ascii: "\"") && previous != UInt8(ascii: "\\") { inDouble = false }
            } else if inSingle {
                if c == UInt8(ascii: "'") { inSingle = false }
            } else if c == UInt8(ascii: "#") && (previous == 0x20 || previous == 0x09) {
                // comment to end of line: treat the rest as inert
                atLineStart = false
            } else {
                switch c {
                case UInt8(ascii: "\""): inDouble = true
                case UInt8(ascii: "'") where previous == 0x20 || previous == UInt8(ascii: "[") || previous == UInt8(ascii: "{") || previous == UInt8(ascii: ",") || previous == UInt8(ascii: ":"):
                    inSingle = true
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    flow += 1
                    maxFlow = max(maxFlow, flow)
                    if maxFlow > maxDepth { return "nesting deeper than \(maxDepth) levels" }
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    flow = max(0, flow - 1)
                default: break
                }
            }
            previous = c
        }
        return nil
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

    private static func convert(_ node: Node, path: String, depth: Int, budget: inout Int) throws(ManifestError) -> JSONValue {
        budget -= 1
        if budget < 0 {
            throw ManifestError("more than \(maxNodes) YAML nodes (alias expansion?)", line: node.mark?.line)
        }
        if depth > maxDepth {
            throw ManifestError("nesting deeper than \(maxDepth) levels", line: node.mark?.line, field: path.isEmpty ? nil : path)
        }
        switch node {
        case .scalar(let scalar):
            return resolve(scalar)
        case .sequence(let seq):
            var items: [JSONValue] = []
            items.reserveCapacity(seq.count)
            for (i, item) in seq.enumerated() {
                items.append(try convert(item, path: path + "[\(i)]", depth: depth + 1, budget: &budget))
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
                object.appendUnchecked(key, try convert(v, path: childPath, depth: depth + 1, budget: &budget))
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
        if plain.allSatisfy(\.isASCIIDigit) {
            if plain.count > 1 && plain.first == "0" { return nil }
            return sign + plain
        }
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
