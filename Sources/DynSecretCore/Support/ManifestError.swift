/// A problem with an input file or object, located as precisely as is known.
///
/// Rendered as `FILE: document N (line L): FIELD: message`; parts that are unknown are left out.
/// Messages never carry secret values.
public struct ManifestError: Error, Sendable, Equatable, CustomStringConvertible {
    /// File path, `-` for standard input, or a description such as `--merge-into`.
    public var source: String?
    /// 1-based index of the YAML/JSON document within the source.
    public var document: Int?
    /// 1-based line of the document or value, when known.
    public var line: Int?
    /// Field path in kubectl notation, such as `metadata.name` or `data[.dockerconfigjson]`.
    public var field: String?
    public var message: String

    public init(_ message: String, source: String? = nil, document: Int? = nil, line: Int? = nil, field: String? = nil) {
        self.message = message
        self.source = source
        self.document = document
        self.line = line
        self.field = field
    }

    /// This error, placed in `source` / `document` unless it already names them.
    public func located(source: String?, document: Int? = nil, line: Int? = nil) -> ManifestError {
        var e = self
        if e.source == nil { e.source = source }
        if e.document == nil { e.document = document }
        if e.line == nil { e.line = line }
        return e
    }

    public var description: String {
        var where_: [String] = []
        if let source { where_.append(source) }
        var doc: [String] = []
        if let document { doc.append("document \(document)") }
        if let line { doc.append(document == nil ? "line \(line)" : "(line \(line))") }
        if !doc.isEmpty { where_.append(doc.joined(separator: " ")) }
        if let field { where_.append(field) }
        where_.append(message)
        return where_.joined(separator: ": ")
    }
}
