/// The replica content hash: `sha256:` + hex of SHA-256 over the canonical type and data of a Secret.
///
/// Canonical form: the effective type's UTF-8 bytes, a 0 byte, then for each data key in UTF-8 byte order the key,
/// a 0 byte, the value length as 8 bytes big-endian, and the value. `stringData` is merged first, as the API does.
///
/// Core has no C and no crypto library, so SHA-256 (FIPS 180-4) is implemented here in pure Swift; it hashes
/// only replica content for change detection, never key material. Tests check it against the FIPS vectors.
public enum ReplicaContentHash {
    /// `sha256:HEX` of `secret`'s canonical type and data.
    public static func of(_ secret: Secret) -> String {
        of(type: secret.effectiveType, data: secret.mergedData)
    }

    /// `sha256:HEX` of `configMap`'s data and binaryData.
    public static func of(_ configMap: ConfigMap) -> String {
        of(configMapData: configMap.data.mapValues { Array($0.utf8) }, binaryData: configMap.binaryData)
    }

    /// `sha256:HEX` of a canonical type and data.
    public static func of(type: String, data: [String: [UInt8]]) -> String {
        var bytes = Array(type.utf8)
        bytes.append(0)
        append(data, to: &bytes)
        return "sha256:" + hex(SHA256Pure.digest(bytes))
    }

    /// `sha256:HEX` of a ConfigMap's content: an empty type (a 0 byte), the `data` entries (UTF-8) as a Secret's,
    /// a 0xFF byte (never part of a key), then the `binaryData` entries.
    public static func of(configMapData data: [String: [UInt8]], binaryData: [String: [UInt8]]) -> String {
        var bytes: [UInt8] = [0]
        append(data, to: &bytes)
        bytes.append(0xFF)
        append(binaryData, to: &bytes)
        return "sha256:" + hex(SHA256Pure.digest(bytes))
    }

    private static func append(_ data: [String: [UInt8]], to bytes: inout [UInt8]) {
        for key in data.keys.sorted(by: utf8Less) {
            let value = data[key]!
            bytes += key.utf8
            bytes.append(0)
            let n = UInt64(value.count)
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: n >> UInt64(shift))) }
            bytes += value
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// SHA-256 (FIPS 180-4) in pure Swift, for content hashes in Core.
enum SHA256Pure {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func digest(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var m = message
        let bitLength = UInt64(message.count) &* 8
        m.append(0x80)
        while m.count % 64 != 56 { m.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { m.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        var w = [UInt32](repeating: 0, count: 64)
        for chunk in stride(from: 0, to: m.count, by: 64) {
            for i in 0..<16 {
                let j = chunk + i * 4
                w[i] = UInt32(m[j]) << 24 | UInt32(m[j + 1]) << 16 | UInt32(m[j + 2]) << 8 | UInt32(m[j + 3])
            }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
            for i in 0..<64 {
                let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let ch = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ ch &+ k[i] &+ w[i]
                let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let maj = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ maj
                hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
        }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for v in h { for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) } }
        return out
    }

    @inline(__always) private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}
