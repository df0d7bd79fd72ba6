import Foundation
import Logging

/// How a node writes its log lines to standard error.
public enum LogFormat: String, Sendable, CaseIterable {
    /// swift-log's plain lines, for people.
    case text
    /// One JSON object per line, for log collectors (Fluent Bit, Vector, Loki's promtail…).
    case json
}

/// A swift-log handler that writes one JSON object per line to standard error:
/// `{"time":"2026-12-06T20:31:07.123Z","level":"warning","logger":"edge","message":"…","source":"BranchyNode"}`
/// plus any metadata as string fields under `"metadata"`. Message text and metadata values are
/// escaped as JSON strings, so a peer-supplied name cannot forge a line or a field.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        var fields: [(String, String)] = [
            ("time", Self.timestamp()), ("level", level.rawValue), ("logger", label), ("message", message.description), ("source", source),
        ]
        let merged = metadata.merging(extra ?? [:]) { _, new in new }
        var text = "{" + fields.map { "\(Self.quoted($0.0)):\(Self.quoted($0.1))" }.joined(separator: ",")
        if !merged.isEmpty {
            fields = merged.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") }
            text += ",\"metadata\":{" + fields.map { "\(Self.quoted($0.0)):\(Self.quoted($0.1))" }.joined(separator: ",") + "}"
        }
        text += "}\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// `s` as a JSON string literal: quotes, backslashes and every control character escaped.
    public static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value)
                || scalar.value == 0x2028 || scalar.value == 0x2029:
                out += String(format: "\\u%04x", scalar.value)
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// The current time as RFC 3339 in UTC with milliseconds.
    public static func timestamp() -> String {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        var tm = tm()
        var seconds = t.tv_sec
        gmtime_r(&seconds, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
                      Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), Int(t.tv_nsec / 1_000_000))
    }
}
