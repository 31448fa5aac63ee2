/// Typed access to a decoded object's fields, with errors that name the field path.
struct FieldReader {
    let object: JSONObject
    let path: String

    init(_ object: JSONObject, path: String) {
        self.object = object
        self.path = path
    }

    func child(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    private func typeError(_ key: String, _ expected: String, _ got: JSONValue) -> ManifestError {
        ManifestError("expected \(expected), got \(got.typeName)", field: child(key))
    }

    func string(_ key: String) throws(ManifestError) -> String? {
        switch object[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let v?: throw typeError(key, "string", v)
        }
    }

    func bool(_ key: String) throws(ManifestError) -> Bool? {
        switch object[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        case let v?: throw typeError(key, "boolean", v)
        }
    }

    func int64(_ key: String) throws(ManifestError) -> Int64? {
        switch object[key] {
        case nil, .null?: return nil
        case .number(let n)?:
            guard let v = Int64(n) else { throw ManifestError("expected an integer, got \(n)", field: child(key)) }
            return v
        case let v?: throw typeError(key, "integer", v)
        }
    }

    func object(_ key: String) throws(ManifestError) -> JSONObject? {
        switch object[key] {
        case nil, .null?: return nil
        case .object(let o)?: return o
        case let v?: throw typeError(key, "object", v)
        }
    }

    func array(_ key: String) throws(ManifestError) -> [JSONValue]? {
        switch object[key] {
        case nil, .null?: return nil
        case .array(let a)?: return a
        case let v?: throw typeError(key, "array", v)
        }
    }

    /// A `map[string]string` field; `null` values are an error, as in Go.
    func stringMap(_ key: String) throws(ManifestError) -> [String: String] {
        guard let o = try object(key) else { return [:] }
        var out: [String: String] = [:]
        for m in o.members {
            guard case .string(let s) = m.value else {
                throw ManifestError("expected string, got \(m.value.typeName)", field: child(key) + "[\(m.key)]")
            }
            out[m.key] = s
        }
        return out
    }

    func stringArray(_ key: String) throws(ManifestError) -> [String] {
        guard let a = try array(key) else { return [] }
        var out: [String] = []
        for (i, v) in a.enumerated() {
            guard case .string(let s) = v else {
                throw ManifestError("expected string, got \(v.typeName)", field: child(key) + "[\(i)]")
            }
            out.append(s)
        }
        return out
    }

    /// Keys of the object not in `known`, as field paths.
    func unknownFields(known: Set<String>) -> [String] {
        object.keys.filter { !known.contains($0) }.map(child)
    }
}

/// Compares strings by their UTF-8 bytes, as Go sorts map keys.
package func utf8Less(_ a: String, _ b: String) -> Bool {
    a.utf8.lexicographicallyPrecedes(b.utf8)
}
