/// Writes YAML the way kubectl's `-o yaml` does: mapping keys sorted in go-yaml's order,
/// two-space indentation, sequences inside mappings not indented, strings quoted only when needed.
public enum YAMLWriter {
    /// The YAML text of one document (no `---` marker), ending in a newline.
    public static func document(_ value: JSONValue) -> String {
        var out = ""
        switch value {
        case .object(let o) where !o.isEmpty:
            writeMapping(o, indent: 0, into: &out)
        case .array(let a) where !a.isEmpty:
            writeSequence(a, indent: 0, into: &out)
        default:
            out += scalar(value) + "\n"
        }
        return out
    }

    /// Several documents separated by `---` lines.
    public static func documents(_ values: [JSONValue]) -> String {
        values.map(document).joined(separator: "---\n")
    }

    private static func pad(_ n: Int) -> String { String(repeating: " ", count: n) }

    private static func writeMapping(_ object: JSONObject, indent: Int, into out: inout String, firstInline: Bool = false) {
        let sorted = object.members.sorted { goYAMLKeyLess($0.key, $1.key) }
        for (i, m) in sorted.enumerated() {
            if !(firstInline && i == 0) { out += pad(indent) }
            out += quote(m.key)
            out += ":"
            writeValue(m.value, indent: indent, inSequence: false, into: &out)
        }
    }

    private static func writeSequence(_ items: [JSONValue], indent: Int, into out: inout String) {
        for item in items {
            out += pad(indent) + "-"
            writeValue(item, indent: indent, inSequence: true, into: &out)
        }
    }

    /// Writes what follows `key:` or `-`.
    private static func writeValue(_ value: JSONValue, indent: Int, inSequence: Bool, into out: inout String) {
        switch value {
        case .object(let o) where !o.isEmpty:
            if inSequence {
                out += " "
                writeMapping(o, indent: indent + 2, into: &out, firstInline: true)
            } else {
                out += "\n"
                writeMapping(o, indent: indent + 2, into: &out)
            }
        case .array(let a) where !a.isEmpty:
            if inSequence {
                out += " "
                // A nested sequence starts on the same line as its parent's dash.
                var first = true
                for item in a {
                    out += first ? "-" : pad(indent + 2) + "-"
                    first = false
                    writeValue(item, indent: indent + 2, inSequence: true, into: &out)
                }
            } else {
                out += "\n"
                writeSequence(a, indent: indent, into: &out)
            }
        case .string(let s) where literalBlockAllowed(s):
            out += " " + literalBlock(s, indent: inSequence ? indent + 2 : indent + 2)
        default:
            out += " " + scalar(value) + "\n"
        }
    }

    private static func scalar(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .number(let n): n
        case .string(let s): quote(s)
        case .array: "[]"
        case .object: "{}"
        }
    }

    // MARK: - Strings

    /// A multi-line string is written as a literal block when every line is printable and has no trailing blanks.
    private static func literalBlock(_ s: String, indent: Int) -> String {
        var trailing = 0
        for c in s.unicodeScalars.reversed() {
            if c == "\n" { trailing += 1 } else { break }
        }
        let chomp = trailing == 0 ? "-" : (trailing == 1 ? "" : "+")
        var body = s
        if trailing > 0 { body.removeLast(trailing) }
        var out = "|" + chomp + "\n"
        for line in body.split(separator: "\n", omittingEmptySubsequences: false) {
            out += line.isEmpty ? "\n" : pad(indent) + line + "\n"
        }
        for _ in 1..<max(trailing, 1) { out += "\n" }
        return out
    }

    private static func literalBlockAllowed(_ s: String) -> Bool {
        guard s.contains("\n"), let first = s.unicodeScalars.first, first != " ", first != "\t", first != "\n" else { return false }
        var previous: Unicode.Scalar = "\n"
        for c in s.unicodeScalars {
            if c == "\n" {
                if previous == " " || previous == "\t" { return false }
            } else if !printable(c) || c == "\t" || c == "\u{FEFF}" {
                return false
            }
            previous = c
        }
        return previous != " " && previous != "\t"
    }

    private static func printable(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x0A, 0x09: true
        case 0x20...0x7E: true
        case 0x85, 0xA0...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: c.value != 0xFEFF
        default: false
        }
    }

    /// Quotes `s` only when a plain scalar would not read back as the same string.
    public static func quote(_ s: String) -> String {
        if s.isEmpty { return "\"\"" }
        if !s.unicodeScalars.allSatisfy({ printable($0) && $0 != "\n" && $0 != "\t" }) || s.contains("\n") {
            return doubleQuoted(s)
        }
        if resolvesToNonString(s) { return doubleQuoted(s) }
        if plainAllowed(s) { return s }
        return "'" + s.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''") + "'"
    }

    private static func plainAllowed(_ s: String) -> Bool {
        let scalars = Array(s.unicodeScalars)
        guard let first = scalars.first, let last = scalars.last else { return false }
        if first == " " || last == " " { return false }
        if "-?:,[]{}#&*!|>'\"%@`".unicodeScalars.contains(first) {
            // `-`, `?` and `:` start a plain scalar when followed by a non-space, but keep it simple and safe.
            if !(first == "-" && scalars.count > 1 && scalars[1] != " " && !resolvesToNonString(s)) { return false }
        }
        for (i, c) in scalars.enumerated() {
            let next: Unicode.Scalar? = i + 1 < scalars.count ? scalars[i + 1] : nil
            if c == ":" && (next == nil || next == " ") { return false }
            if c == "#" && i > 0 && scalars[i - 1] == " " { return false }
            if c == "," || c == "[" || c == "]" || c == "{" || c == "}" { return false }
        }
        if s == "---" || s.hasPrefix("--- ") || s == "..." { return false }
        return true
    }

    /// True when a plain scalar `s` would be read as null, a boolean, a number or a timestamp
    /// by a YAML 1.1 or 1.2 reader (go-yaml, PyYAML, Yams).
    static func resolvesToNonString(_ s: String) -> Bool {
        switch s {
        case "~", "null", "Null", "NULL",
            "true", "True", "TRUE", "false", "False", "FALSE",
            "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
            "on", "On", "ON", "off", "Off", "OFF",
            ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
            ".nan", ".NaN", ".NAN", "<<", "=":
            return true
        default:
            break
        }
        guard let f = s.unicodeScalars.first else { return true }
        let numberStart = ("0"..."9").contains(f) || f == "-" || f == "+" || f == "."
        if !numberStart { return false }
        // Anything made only of number-ish characters is quoted: ints, floats, hex, octal, base 60, dates.
        let numberish = s.unicodeScalars.allSatisfy { c in
            ("0"..."9").contains(c) || "+-._:eExXoObBabcdefABCDEFTtZz ".unicodeScalars.contains(c)
        }
        return numberish && s.unicodeScalars.contains(where: { ("0"..."9").contains($0) })
    }

    private static func doubleQuoted(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\0": out += "\\0"
            default:
                if printable(c) {
                    out.unicodeScalars.append(c)
                } else if c.value <= 0xFF {
                    out += "\\x" + hex(c.value, 2)
                } else if c.value <= 0xFFFF {
                    out += "\\u" + hex(c.value, 4)
                } else {
                    out += "\\U" + hex(c.value, 8)
                }
            }
        }
        return out + "\""
    }

    private static func hex(_ v: UInt32, _ width: Int) -> String {
        let h = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - h.count)) + h
    }

    // MARK: - Key order

    /// go-yaml's map key order for string keys: runs of digits compare as numbers, and a
    /// non-letter sorts before a letter unless it follows a digit.
    public static func goYAMLKeyLess(_ a: String, _ b: String) -> Bool {
        let ar = Array(a.unicodeScalars)
        let br = Array(b.unicodeScalars)
        var digits = false
        var i = 0
        while i < ar.count && i < br.count {
            if ar[i] == br[i] {
                digits = isDigit(ar[i])
                i += 1
                continue
            }
            let al = isLetter(ar[i])
            let bl = isLetter(br[i])
            if al && bl { return ar[i].value < br[i].value }
            if al || bl { return digits ? al : bl }
            var an: Int64 = 0
            var bn: Int64 = 0
            if ar[i] == "0" || br[i] == "0" {
                var j = i - 1
                while j >= 0 && isDigit(ar[j]) {
                    if ar[j] != "0" {
                        an = 1
                        bn = 1
                        break
                    }
                    j -= 1
                }
            }
            var ai = i
            while ai < ar.count && isDigit(ar[ai]) {
                an = an &* 10 &+ Int64(ar[ai].value) &- 48
                ai += 1
            }
            var bi = i
            while bi < br.count && isDigit(br[bi]) {
                bn = bn &* 10 &+ Int64(br[bi].value) &- 48
                bi += 1
            }
            if an != bn { return an < bn }
            if ai != bi { return ai < bi }
            return ar[i].value < br[i].value
        }
        return ar.count < br.count
    }

    private static func isLetter(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    private static func isDigit(_ c: Unicode.Scalar) -> Bool {
        c.properties.generalCategory == .decimalNumber
    }
}
