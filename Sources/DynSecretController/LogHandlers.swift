internal import DynSecretCore
internal import Foundation
public import Logging
internal import Synchronization

/// A swift-log handler writing one JSON object per line to standard error: `time`, `level`, `logger`, `msg`, then the
/// metadata. Metadata values are whatever the code logs: names, reasons, counts and error messages, never Secret data.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private static let lock = Mutex(())

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var o = JSONObject()
        o["time"] = .string(microTime(Date()))
        o["level"] = .string(event.level.rawValue)
        o["logger"] = .string(label)
        o["msg"] = .string(event.message.description)
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        for key in all.keys.sorted() where o[key] == nil { o[key] = Self.json(all[key]!) }
        var line = GoJSONWriter.compact(.object(o))
        line.append(0x0A)
        Self.lock.withLock { _ in
            FileHandle.standardError.write(Data(line))
        }
    }

    static func json(_ v: Logger.MetadataValue) -> JSONValue {
        switch v {
        case .string(let s): .string(s)
        case .stringConvertible(let c): .string(c.description)
        case .array(let a): .array(a.map(json))
        case .dictionary(let d): .object(JSONObject(d.keys.sorted().map { ($0, json(d[$0]!)) }))
        }
    }
}
