/// Standard base64 (RFC 4648 §4) as Go's `encoding/base64` reads and writes it.
public enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let table: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// Padded standard encoding.
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        String(decoding: encodeBytes(bytes), as: UTF8.self)
    }

    /// Padded standard encoding, as ASCII bytes.
    public static func encodeBytes<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        let input = Array(bytes)
        var out = [UInt8]()
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= input.count {
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
            i += 3
        }
        let rest = input.count - i
        if rest > 0 {
            var n = UInt32(input[i]) << 16
            if rest == 2 { n |= UInt32(input[i + 1]) << 8 }
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(rest == 2 ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
        return out
    }

    /// Decodes standard base64; `padded` selects Go's `StdEncoding` (padding required) or `RawStdEncoding` (no padding allowed).
    /// Carriage returns and newlines are skipped, as Go does. Returns `nil` on any other invalid input.
    public static func decode(_ text: String, padded: Bool = true) -> [UInt8]? {
        var chars: [UInt8] = []
        chars.reserveCapacity(text.utf8.count)
        for c in text.utf8 where c != 0x0A && c != 0x0D { chars.append(c) }
        var pad = 0
        if padded {
            guard chars.count % 4 == 0 else { return nil }
            while pad < 2, let last = chars.last, last == UInt8(ascii: "=") {
                chars.removeLast()
                pad += 1
            }
        }
        // Remaining length after padding removal determines the tail size.
        let tail = chars.count % 4
        if tail == 1 { return nil }
        if padded, pad > 0, tail != 4 - pad { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count * 3 / 4)
        var i = 0
        while i + 4 <= chars.count {
            var n: UInt32 = 0
            for j in 0..<4 {
                let v = table[Int(chars[i + j])]
                if v == 0xFF { return nil }
                n = n << 6 | UInt32(v)
            }
            out.append(UInt8(n >> 16 & 0xFF))
            out.append(UInt8(n >> 8 & 0xFF))
            out.append(UInt8(n & 0xFF))
            i += 4
        }
        if tail > 0 {
            var n: UInt32 = 0
            for j in 0..<tail {
                let v = table[Int(chars[i + j])]
                if v == 0xFF { return nil }
                n = n << 6 | UInt32(v)
            }
            n <<= UInt32(6 * (4 - tail))
            out.append(UInt8(n >> 16 & 0xFF))
            if tail == 3 { out.append(UInt8(n >> 8 & 0xFF)) }
        }
        return out
    }
}
