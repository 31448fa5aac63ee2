/// How serious a finding is. `error` breaks something; `warning` is likely wrong; `note` is informational.
public enum Severity: String, Sendable, Codable, Comparable, CaseIterable {
    case note, warning, error

    private var rank: Int {
        switch self {
        case .note: 0
        case .warning: 1
        case .error: 2
        }
    }

    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// The object a finding is about.
public struct ObjectRef: Sendable, Codable, Hashable, CustomStringConvertible {
    public var kind: String
    public var namespace: String?
    public var name: String?

    public init(kind: String, namespace: String?, name: String?) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    public var description: String {
        kind + " " + (namespace.map { $0 + "/" } ?? "") + (name ?? "<unnamed>")
    }
}

/// One problem found in the input. Messages never contain secret values.
public struct Finding: Sendable, Codable, Equatable {
    /// Stable rule id (see `ValidationRule.all`).
    public var rule: String
    public var severity: Severity
    public var message: String
    public var source: String?
    /// 1-based document number within `source`.
    public var document: Int?
    /// 1-based line where the document (or item) starts.
    public var line: Int?
    public var object: ObjectRef?
    /// Field path within the object, kubectl style (`data[.dockerconfigjson]`, `spec.template.spec.containers[0].image`).
    public var field: String?

    public init(rule: ValidationRule, message: String, severity: Severity? = nil, source: String? = nil, document: Int? = nil,
                line: Int? = nil, object: ObjectRef? = nil, field: String? = nil) {
        self.rule = rule.id
        self.severity = severity ?? rule.severity
        self.message = message
        self.source = source
        self.document = document
        self.line = line
        self.object = object
        self.field = field
    }

    /// `FILE: document N (line L): Kind ns/name: field: severity[rule]: message`
    public var text: String {
        var parts: [String] = []
        var location = source ?? "-"
        if let document { location += ": document \(document)" }
        if let line { location += document == nil ? ":\(line)" : " (line \(line))" }
        parts.append(location)
        if let object { parts.append(object.description) }
        if let field { parts.append(field) }
        parts.append("\(severity.rawValue)[\(rule)]")
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}
