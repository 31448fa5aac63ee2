/// One authentication challenge of a `WWW-Authenticate` header (RFC 7235).
public struct AuthChallenge: Sendable, Equatable {
    /// The scheme, lowercased: `basic`, `bearer`.
    public var scheme: String
    /// Parameters by lowercased name; quoted values unquoted.
    public var parameters: [String: String]

    public init(scheme: String, parameters: [String: String] = [:]) {
        self.scheme = scheme
        self.parameters = parameters
    }

    /// Every challenge in the given header values, in order.
    ///
    /// Several challenges may share one value (`Basic realm="a", Bearer realm="b",service="c"`); quoted strings
    /// may contain commas, `=` and backslash escapes. Malformed parts are skipped, never fatal.
    public static func parse(_ values: [String]) -> [AuthChallenge] {
        values.flatMap { parse(Array($0.utf8)) }
    }

    private static func parse(_ s: [UInt8]) -> [AuthChallenge] {
        var out: [AuthChallenge] = []
        var i = 0
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }
        func isTokenChar(_ c: UInt8) -> Bool {
            // tchar: any visible ASCII except separators.
            c > 0x20 && c < 0x7F && !"\"(),/:;<=>?@[\\]{}".utf8.contains(c)
        }
        func skipSpaces() { while i < s.count, isSpace(s[i]) { i += 1 } }
        func skipSeparators() { while i < s.count, isSpace(s[i]) || s[i] == UInt8(ascii: ",") { i += 1 } }
        func token() -> String {
            let start = i
            while i < s.count, isTokenChar(s[i]) { i += 1 }
            return String(decoding: s[start..<i], as: UTF8.self)
        }
        func bare() -> String {
            // Leniently up to the next comma or space (an unquoted realm URL is not a token, but servers send it).
            let start = i
            while i < s.count, s[i] != UInt8(ascii: ","), !isSpace(s[i]) { i += 1 }
            return String(decoding: s[start..<i], as: UTF8.self)
        }
        func quoted() -> String {
            // s[i] is the opening quote.
            i += 1
            var bytes: [UInt8] = []
            while i < s.count, s[i] != UInt8(ascii: "\"") {
                if s[i] == UInt8(ascii: "\\"), i + 1 < s.count { i += 1 }
                bytes.append(s[i])
                i += 1
            }
            if i < s.count { i += 1 }  // closing quote
            return String(decoding: bytes, as: UTF8.self)
        }

        while true {
            skipSeparators()
            guard i < s.count else { break }
            let scheme = token()
            guard !scheme.isEmpty else {
                i += 1  // not a token: skip the byte
                continue
            }
            var challenge = AuthChallenge(scheme: scheme.lowercased())
            // Parameters until the next token that is not followed by '=' (the next challenge's scheme).
            while true {
                let mark = i
                skipSeparators()
                let name = token()
                skipSpaces()
                guard !name.isEmpty, i < s.count, s[i] == UInt8(ascii: "=") else {
                    i = mark
                    break
                }
                i += 1
                skipSpaces()
                let value = i < s.count && s[i] == UInt8(ascii: "\"") ? quoted() : bare()
                challenge.parameters[name.lowercased()] = value
            }
            out.append(challenge)
        }
        return out
    }
}

extension HTTPResponse {
    /// The authentication challenges of every `WWW-Authenticate` header, in order.
    var challenges: [AuthChallenge] { AuthChallenge.parse(headers.filter { $0.name == "www-authenticate" }.map(\.value)) }
}
