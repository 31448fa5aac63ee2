/// Finds value boundaries in JSON bytes without building values, so large lists can be read item by item.
enum JSONScanner {
    static func skipWhitespace(_ b: [UInt8], _ i: Int) -> Int {
        var i = i
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x09 || b[i] == 0x0D { i += 1 }
        return i
    }

    /// Line numbers for increasing offsets, counted incrementally (linear over the whole input).
    struct LineCounter {
        private var offset = 0
        private var line = 1

        mutating func line(of target: Int, in b: [UInt8]) -> Int {
            if target < offset {
                offset = 0
                line = 1
            }
            let end = min(target, b.count)
            while offset < end {
                if b[offset] == 0x0A { line += 1 }
                offset += 1
            }
            return line
        }
    }

    /// The end offset of the value starting at `i` (bracket and string aware), or nil when the input ends first.
    /// Malformed text inside the value is left for `JSONParser` to report.
    static func valueEnd(_ b: [UInt8], _ i: Int) -> Int? {
        guard i < b.count else { return nil }
        switch b[i] {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var j = i
            while j < b.count {
                let c = b[j]
                if c == 0x22 {
                    guard let e = stringEnd(b, j) else { return nil }
                    j = e
                    continue
                }
                if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") {
                    depth += 1
                } else if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") {
                    depth -= 1
                    if depth == 0 { return j + 1 }
                }
                j += 1
            }
            return nil
        case 0x22:
            return stringEnd(b, i)
        default:
            var j = i
            while j < b.count, !(b[j] == 0x20 || b[j] == 0x0A || b[j] == 0x09 || b[j] == 0x0D || b[j] == 0x2C
                                 || b[j] == UInt8(ascii: "]") || b[j] == UInt8(ascii: "}")) { j += 1 }
            return j
        }
    }

    /// The offset after the closing quote of the string starting at `i`.
    static func stringEnd(_ b: [UInt8], _ i: Int) -> Int? {
        var j = i + 1
        while j < b.count {
            switch b[j] {
            case 0x5C: j += 2
            case 0x22: return j + 1
            default: j += 1
            }
        }
        return nil
    }

    /// For an object starting at `start` whose `kind` ends in `List` and whose `items` is an array: the byte ranges
    /// of the items and the object's end, found in one pass. Nil when the object is not such a list.
    static func listItems(_ b: [UInt8], _ start: Int) -> (items: [Range<Int>], end: Int, error: String?)? {
        var i = skipWhitespace(b, start + 1)
        var kind: String?
        var ranges: [Range<Int>]?
        var itemsError: String?
        while i < b.count, b[i] == 0x22 {
            guard let keyEnd = stringEnd(b, i) else { return nil }
            let key = b[(i + 1)..<(keyEnd - 1)]
            i = skipWhitespace(b, keyEnd)
            guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
            i = skipWhitespace(b, i + 1)
            guard i < b.count else { return nil }
            if key.elementsEqual("items".utf8), b[i] == UInt8(ascii: "[") {
                var items: [Range<Int>] = []
                var j = skipWhitespace(b, i + 1)
                while true {
                    guard j < b.count else { return nil }
                    if b[j] == UInt8(ascii: "]") {
                        j += 1
                        break
                    }
                    guard let e = valueEnd(b, j) else { return nil }
                    items.append(j..<e)
                    j = skipWhitespace(b, e)
                    guard j < b.count else { return nil }
                    if b[j] == UInt8(ascii: ",") {
                        j = skipWhitespace(b, j + 1)
                    } else if b[j] != UInt8(ascii: "]") {
                        itemsError = "expected ',' or ']' between list items"
                        guard let e = valueEnd(b, i) else { return nil }
                        j = e
                        break
                    }
                }
                ranges = items
                i = j
            } else {
                guard let valueEnd = valueEnd(b, i) else { return nil }
                if key.elementsEqual("kind".utf8), b[i] == 0x22 {
                    kind = String(decoding: b[(i + 1)..<(valueEnd - 1)], as: UTF8.self)
                }
                i = valueEnd
            }
            i = skipWhitespace(b, i)
            if i < b.count, b[i] == UInt8(ascii: ",") { i = skipWhitespace(b, i + 1) }
        }
        guard i < b.count, b[i] == UInt8(ascii: "}"), let kind, kind.hasSuffix("List"), let ranges else { return nil }
        return (ranges, i + 1, itemsError)
    }
}
