/// Go's duration strings (`time.ParseDuration`), as kubelet credential providers and the policy write them:
/// `500ms`, `2s`, `10m`, `1h`, `1m30s`; units ns, us (µs), ms, s, m, h; at most about 292 years.
public enum GoDuration {
    /// The duration `text` says, or nil (with `allowZero`, `0` and `0s` are accepted).
    public static func parse(_ text: String, allowZero: Bool = false) -> Duration? {
        if allowZero && (text == "0") { return .zero }
        var total = Duration.zero
        var number = ""
        var chars = Array(text)[...]
        guard !chars.isEmpty else { return nil }
        var sawUnit = false
        while let c = chars.first {
            if c.isASCII && (c.isNumber || c == ".") {
                number.append(c)
                chars = chars.dropFirst()
                continue
            }
            var unit = ""
            while let u = chars.first, u.isLetter || u == "µ" {
                unit.append(u)
                chars = chars.dropFirst()
            }
            guard let v = Double(number), v >= 0 else { return nil }
            let nanos: Double
            switch unit {
            case "ns": nanos = 1
            case "us", "µs": nanos = 1e3
            case "ms": nanos = 1e6
            case "s": nanos = 1e9
            case "m": nanos = 60e9
            case "h": nanos = 3600e9
            default: return nil
            }
            let add = (v * nanos).rounded()
            let limit = Double(Int64.max)
            let have = Double(total.components.seconds) * 1e9 + Double(total.components.attoseconds) / 1e9
            guard add <= limit - have else { return nil }
            total += .nanoseconds(Int64(add))
            number = ""
            sawUnit = true
        }
        guard number.isEmpty, sawUnit, allowZero || total > .zero else { return nil }
        return total
    }
}
