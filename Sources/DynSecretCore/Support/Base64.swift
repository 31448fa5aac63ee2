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
        var chars = Array(text.utf8)
        if chars.contains(where: { $0 == 0x0A || $0 == 0x0D }) { chars.removeAll { $0 == 0x0A || $0 == 0x0D } }
        var count = chars.count
        var pad = 0
        if padded {
            guard count % 4 == 0 else { return nil }
            while pad < 2, count > 0, chars[count - 1] == UInt8(ascii: "=") {
                count -= 1
                pad += 1
            }
        }
        let tail = count % 4
        if tail == 1 { return nil }
        if padded, pad > 0, tail != 4 - pad { return nil }
        let t = table
        var out = [UInt8](repeating: 0, count: count / 4 * 3 + (tail == 0 ? 0 : tail - 1))
        var i = 0
        var o = 0
        var bad: UInt8 = 0
        while i + 4 <= count {
            let a = t[Int(chars[i])], b = t[Int(chars[i + 1])], c = t[Int(chars[i + 2])], d = t[Int(chars[i + 3])]
            bad |= a | b | c | d
            let n = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
            out[o] = UInt8(truncatingIfNeeded: n >> 16)
            out[o + 1] = UInt8(truncatingIfNeeded: n >> 8)
            out[o + 2] = UInt8(truncatingIfNeeded: n)
            i += 4
            o += 3
        }
        if tail > 0 {
            var n: UInt32 = 0
            for j in 0..<tail {
                let v = t[Int(chars[i + j])]
                bad |= v
                n = n << 6 | UInt32(v)
            }
            n <<= UInt32(6 * (4 - tail))
            out[o] = UInt8(truncatingIfNeeded: n >> 16)
            if tail == 3 { out[o + 1] = UInt8(truncatingIfNeeded: n >> 8) }
        }
        // Invalid characters map to 0xFF, which has bits above the 6 a valid value uses.
        return bad & 0xC0 == 0 ? out : nil
    }
}
