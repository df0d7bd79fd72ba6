import Foundation

/// A validated description of where each part of a split early-exit network runs:
/// which nodes exist, which model stages each hosts, and how they connect
/// (devices → edges → cloud, as a tree).
///
/// Load one with `Topology.load(contentsOf:stageOrder:checkFiles:)`; every check
/// runs before any socket is opened, and the first problem is thrown as a
/// `TopologyError` naming the file, the key path and the reason.
public struct Topology: Sendable {
    /// The file this topology was read from.
    public let fileURL: URL
    /// The model directory, resolved against the topology file's folder.
    public let modelDirectory: URL
    /// The data set a device classifies when given none (`dataset:`), resolved against the file's folder.
    public let dataset: URL?
    /// The default folder for TLS files (`certs:`), resolved against the file's folder; nil when not given.
    public let certsDirectory: URL?
    /// The nodes, in file order.
    public let nodes: [NodeConfig]
    private let indexByName: [String: Int]

    /// Creates a topology from parts without validating it. Prefer `load`, which validates.
    public init(fileURL: URL, modelDirectory: URL, dataset: URL? = nil, certsDirectory: URL? = nil, nodes: [NodeConfig]) {
        self.fileURL = fileURL
        self.modelDirectory = modelDirectory
        self.dataset = dataset
        self.certsDirectory = certsDirectory
        self.nodes = nodes
        var index: [String: Int] = [:]
        for (i, node) in nodes.enumerated() where index[node.name] == nil { index[node.name] = i }
        self.indexByName = index
    }

    /// Largest topology file read, at start-up and on reload: 1 MiB.
    public static let maxFileBytes = 1 << 20

    /// Reads and validates the topology file at `url`.
    ///
    /// - Parameters:
    ///   - url: The YAML file. Relative paths inside it resolve against its folder.
    ///   - stageOrder: The model's stage names in order. When given, every stage name
    ///     must be one of them and every path from a device to the root must host
    ///     exactly these stages, in order.
    ///   - checkFiles: When true, each node's TLS CA, certificate and key must exist and be readable.
    ///   - filesOf: With `checkFiles`, check only this node's files (what the process running it reads).
    /// - Throws: `TopologyError` for any problem, including an unreadable file.
    public static func load(contentsOf url: URL, stageOrder: [String]? = nil, checkFiles: Bool = true,
                            filesOf: String? = nil) throws -> Topology {
        let context = ErrorContext(filePath: url.relativePath)
        let text: String
        do {
            // At start-up and on every reload alike: a topology is small, so a huge file is a mistake
            // (or an attack through a writable config folder) and is refused before it is read.
            if let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int, size > maxFileBytes {
                throw context.error("", "the file is \(size) bytes; a topology file may be at most \(maxFileBytes) bytes")
            }
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            let data = try handle.read(upToCount: maxFileBytes + 1) ?? Data()
            guard data.count <= maxFileBytes else {
                throw context.error("", "the file is more than \(maxFileBytes) bytes; a topology file may be at most \(maxFileBytes) bytes")
            }
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw context.error("", "cannot read the file as UTF-8 text")
            }
            text = decoded
        } catch let error as TopologyError {
            throw error
        } catch {
            let reason = FileManager.default.fileExists(atPath: url.path)
                ? "cannot read the file as UTF-8 text: \(error.localizedDescription)"
                : "no such file"
            throw context.error("", reason)
        }
        return try parse(yaml: text, fileURL: url, stageOrder: stageOrder, checkFiles: checkFiles, filesOf: filesOf)
    }

    /// Validates topology text as if it had been read from `fileURL`; relative paths
    /// resolve against `fileURL`'s folder. Same checks and errors as `load`.
    public static func parse(yaml: String, fileURL: URL, stageOrder: [String]? = nil, checkFiles: Bool = true,
                             filesOf: String? = nil) throws -> Topology {
        let context = ErrorContext(filePath: fileURL.relativePath)
        let base = fileURL.absoluteURL.deletingLastPathComponent()
        let document = try TopologyDocument(yaml: yaml, baseDirectory: base, context: context)
        try TopologyValidator(context: context, nodes: document.nodes, stageOrder: stageOrder)
            .validate(checkFiles: checkFiles, filesOf: filesOf)
        return Topology(fileURL: fileURL, modelDirectory: document.modelDirectory, dataset: document.dataset,
                        certsDirectory: document.certsDirectory, nodes: document.nodes.map(\.config))
    }

    /// The node called `name`, if any.
    public func node(named name: String) -> NodeConfig? {
        indexByName[name].map { nodes[$0] }
    }

    /// The nodes whose upstream is `name`, in file order.
    public func children(of name: String) -> [NodeConfig] {
        nodes.filter { $0.upstream == name }
    }

    /// The node called `name`, its upstream, that node's upstream, and so on up to the root.
    /// Empty when no node is called `name`. Stops at an unknown upstream or a repeated node.
    public func pathToRoot(from name: String) -> [NodeConfig] {
        var path: [NodeConfig] = []
        var next: String? = name
        while let current = next, let node = node(named: current), !path.contains(where: { $0.name == current }) {
            path.append(node)
            next = node.upstream
        }
        return path
    }

    /// The root nodes (no upstream), in file order; a valid topology usually has one cloud.
    public var roots: [NodeConfig] { nodes.filter(\.isRoot) }
}
