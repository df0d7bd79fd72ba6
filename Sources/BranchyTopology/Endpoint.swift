import Foundation

/// A network address a node listens on or is dialled at: a host (IPv4, IPv6 or a
/// DNS name) and a TCP port.
///
/// Written in a topology as `host:port`, with IPv6 hosts in brackets:
/// `127.0.0.1:7401`, `[::1]:7401`, `edge-a.local:7401`, `0.0.0.0:7401`. In YAML a
/// bracketed address must be quoted (`listen: "[::1]:7401"`), since `[` starts a list.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// The host: an IPv4 address, an IPv6 address without brackets, or a host name.
    public var host: String
    /// The TCP port, in `1...65535`.
    public var port: Int

    /// Creates an endpoint without checking its parts.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `[ipv6]:port` or `name:port`.
    ///
    /// - Throws: `EndpointError` when the port is missing, not a number or out of
    ///   `1...65535`, or the host is not an IPv4 address, a bracketed IPv6 address or a name.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        func fail(_ reason: String) -> EndpointError { EndpointError(text: text, reason: reason) }
        guard !trimmed.isEmpty else { throw fail("empty address") }

        let hostPart: String
        let portPart: String
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]") else {
                throw fail("missing ']' after IPv6 address")
            }
            hostPart = String(trimmed[trimmed.index(after: trimmed.startIndex)..<close])
            let rest = trimmed[trimmed.index(after: close)...]
            guard rest.hasPrefix(":") else { throw fail("missing port; expected [ipv6]:port") }
            portPart = String(rest.dropFirst())
            guard Endpoint.isIPv6(hostPart) else { throw fail("'\(hostPart)' is not an IPv6 address") }
        } else {
            guard let colon = trimmed.lastIndex(of: ":") else {
                throw fail("missing port; expected host:port")
            }
            hostPart = String(trimmed[..<colon])
            portPart = String(trimmed[trimmed.index(after: colon)...])
            if hostPart.contains(":") {
                throw fail("IPv6 addresses must be written in brackets, as [::1]:7401")
            }
            if hostPart.isEmpty { throw fail("missing host; expected host:port") }
            if hostPart.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) {
                guard Endpoint.isIPv4(hostPart) else { throw fail("'\(hostPart)' is not an IPv4 address") }
            } else {
                guard Endpoint.isHostName(hostPart) else { throw fail("'\(hostPart)' is not a valid host name") }
            }
        }
        guard !portPart.isEmpty else { throw fail("missing port after ':'") }
        guard portPart.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portPart) else {
            throw fail("port '\(portPart)' is not a number")
        }
        guard (1...65535).contains(port) else { throw fail("port \(port) is out of range 1...65535") }
        self.init(host: hostPart, port: port)
    }

    /// True when the host is a wildcard address (`0.0.0.0` or `::`): a node can bind
    /// it to accept connections on every interface, but nobody can dial it.
    public var isUnspecified: Bool {
        if Endpoint.isIPv4(host) {
            return host.split(separator: ".").allSatisfy { Int($0) == 0 }
        }
        guard Endpoint.isIPv6(host) else { return false }
        return host.split(separator: ":").allSatisfy { group in
            group.contains(".")
                ? group.split(separator: ".").allSatisfy { Int($0) == 0 }
                : Int(group, radix: 16) == 0
        }
    }

    /// `host:port`, with an IPv6 host in brackets.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            guard !part.isEmpty, part.count <= 3, let value = Int(part) else { return false }
            return value <= 255
        }
    }

    static func isIPv6(_ text: String) -> Bool {
        guard text.contains(":"), text.count <= 45 else { return false }
        let allowed = Set("0123456789abcdefABCDEF:.")
        guard text.allSatisfy({ allowed.contains($0) }) else { return false }
        let doubleColons = text.components(separatedBy: "::").count - 1
        guard doubleColons <= 1 else { return false }
        let groups = text.split(separator: ":", omittingEmptySubsequences: true)
        guard groups.count <= 8, groups.allSatisfy({ $0.count <= 4 || $0.contains(".") }) else { return false }
        return doubleColons == 1 || groups.count == 8 || (groups.count == 7 && groups.last!.contains("."))
    }

    static func isHostName(_ text: String) -> Bool {
        guard text.count <= 253 else { return false }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            guard !label.isEmpty, label.count <= 63, label.first != "-", label.last != "-" else { return false }
            return label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }
}

/// Why a `host:port` text could not be parsed as an `Endpoint`.
public struct EndpointError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The text that was given.
    public var text: String
    /// What is wrong with it.
    public var reason: String

    /// `bad address 'text': reason`.
    public var description: String { "bad address '\(text)': \(reason)" }
}
