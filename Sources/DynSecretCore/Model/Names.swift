/// Kubernetes name rules, with the API server's error wording.
public enum KubeNames {
    static let dns1123SubdomainMessage =
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    static let dns1123LabelMessage =
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"

    /// Problems with `name` as a DNS-1123 subdomain (Secret and most object names); empty when valid.
    public static func dns1123SubdomainProblems(_ name: String) -> [String] {
        var problems: [String] = []
        if name.utf8.count > 253 { problems.append("must be no more than 253 characters") }
        if !isSubdomain(name) { problems.append(dns1123SubdomainMessage) }
        return problems
    }

    /// The longest DNS-1123 label (a namespace name).
    public static let maxLabelLength = 63

    /// Problems with `name` as a DNS-1123 label (namespace names); empty when valid.
    public static func dns1123LabelProblems(_ name: String) -> [String] {
        var problems: [String] = []
        if name.utf8.count > 63 { problems.append("must be no more than 63 characters") }
        if !isLabel(Array(name.utf8)[...]) { problems.append(dns1123LabelMessage) }
        return problems
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
    }

    private static func isLabel(_ s: ArraySlice<UInt8>) -> Bool {
        guard let f = s.first, let l = s.last, isAlnum(f), isAlnum(l) else { return false }
        return s.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    private static func isSubdomain(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty else { return false }
        return bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy(isLabel)
    }

    /// The API server's errors for a Secret name and namespace, as `field: Type: detail` strings.
    public static func objectNameErrors(name: String?, namespace: String?) -> [String] {
        var errors: [String] = []
        if let name, !name.isEmpty {
            for p in dns1123SubdomainProblems(name) {
                errors.append("metadata.name: Invalid value: \(goQuote(name)): \(p)")
            }
        } else {
            errors.append("metadata.name: Required value: name or generateName is required")
        }
        if let namespace, !namespace.isEmpty {
            for p in dns1123LabelProblems(namespace) {
                errors.append("metadata.namespace: Invalid value: \(goQuote(namespace)): \(p)")
            }
        }
        return errors
    }

    /// The API server's envelope: `Kind "name" is invalid: e` or `…: [e1, e2]`.
    public static func invalidMessage(kind: String, name: String, errors: [String]) -> String {
        let body = errors.count == 1 ? errors[0] : "[" + errors.joined(separator: ", ") + "]"
        return "\(kind) \(goQuote(name)) is invalid: \(body)"
    }

    /// A string quoted as Go's `%q` does for printable text (the API server uses it for values).
    public static func goQuote(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if c.value < 0x20 || c.value == 0x7F {
                    let h = String(c.value, radix: 16)
                    out += "\\x" + (h.count == 1 ? "0" + h : h)
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}
