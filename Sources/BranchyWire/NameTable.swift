/// The names a server sends once in its version-2 `helloAck` (its topology's node names, its
/// model's exit names and its links), so that results refer to them by a one-byte index.
public struct NameTable: Hashable, Sendable {
    /// Most names a table can hold: index 255 is the escape for a name given in full.
    public static let maxNames = 255
    /// The escape index: the name follows in full.
    static let inline: UInt8 = 255

    /// The names, in index order.
    public let names: [String]
    private let index: [String: UInt8]

    /// The empty table (version 1, and clients).
    public static let empty = NameTable([])

    /// A table of `names` in order (duplicates keep their first index; names past 255 are dropped).
    public init(_ names: [String]) {
        var kept: [String] = []
        var index: [String: UInt8] = [:]
        for n in names where index[n] == nil && kept.count < NameTable.maxNames && n.utf8.count <= WireLimits.maxNameBytes {
            index[n] = UInt8(kept.count)
            kept.append(n)
        }
        self.names = kept
        self.index = index
    }

    /// The index of `name`, if the table has it.
    public func index(of name: String) -> UInt8? { index[name] }

    /// The name at `i`, if any.
    public func name(at i: UInt8) -> String? { Int(i) < names.count ? names[Int(i)] : nil }

    public static func == (a: NameTable, b: NameTable) -> Bool { a.names == b.names }
    public func hash(into h: inout Hasher) { h.combine(names) }
}

/// How frames are laid out on one connection.
///
/// A connection starts ``open``: frames have the 20-byte header, whose version byte says how the
/// payload is laid out. The `hello` fixes the version for the rest of the connection: version 1
/// keeps the 20-byte header; version 2 switches, after the `hello` (client) or `helloAck`
/// (server), to the compact header, compact payloads and the server's ``NameTable``.
public struct FrameDialect: Hashable, Sendable {
    /// The versions this implementation speaks.
    public static let supportedVersions: ClosedRange<UInt8> = 1...2
    /// The version a node proposes unless its topology says otherwise.
    public static let latestVersion: UInt8 = 2

    /// The negotiated version, or nil before the hello.
    public var version: UInt8?
    /// The names results refer to (version 2).
    public var names: NameTable

    /// Before the hello: full headers of any supported version.
    public static let open = FrameDialect(version: nil, names: .empty)
    /// Version 1 throughout.
    public static let v1 = FrameDialect(version: 1, names: .empty)
    /// Version 2 after the hello, with the server's names.
    public static func v2(names: NameTable) -> FrameDialect { FrameDialect(version: 2, names: names) }

    /// The dialect that follows a hello or helloAck of `version` carrying `names`.
    public static func after(version: UInt16, names: NameTable) -> FrameDialect {
        version >= 2 ? .v2(names: names) : .v1
    }

    /// Whether frames use the compact header.
    public var isCompact: Bool { (version ?? 1) >= 2 }
    /// The layout of payloads: the negotiated version, else 1.
    var payloadVersion: UInt8 { version ?? 1 }
}
