import Foundation

/// Cross-node checks: names, roles, the upstream tree, listen and dial addresses,
/// thresholds and TLS files. Stage coverage is checked by `StageValidator`.
struct TopologyValidator {
    let context: ErrorContext
    let nodes: [ParsedNode]
    let stageOrder: [String]?
    private let indexByName: [String: Int]

    init(context: ErrorContext, nodes: [ParsedNode], stageOrder: [String]?) {
        self.context = context
        self.nodes = nodes
        self.stageOrder = stageOrder
        var index: [String: Int] = [:]
        for (i, node) in nodes.enumerated() where index[node.config.name] == nil { index[node.config.name] = i }
        self.indexByName = index
    }

    /// Runs every check in a fixed order and throws the first problem found.
    /// - Parameter filesOf: With `checkFiles`, check only this node's TLS files (a process needs only its own).
    func validate(checkFiles: Bool, filesOf: String? = nil) throws {
        try checkUniqueNames()
        try checkHasDevice()
        try checkRoleRules()
        try checkUpstreamTree()
        try checkAddresses()
        if let stageOrder {
            try StageValidator(context: context, nodes: nodes, stageOrder: stageOrder, indexByName: indexByName).validate()
        }
        try checkThresholdCounts()
        if checkFiles { try checkTLSFiles(only: filesOf) }
    }

    private func error(_ node: ParsedNode, _ key: String, _ reason: String) -> TopologyError {
        context.error(node.keyPath(key), reason, line: node.line(of: key))
    }

    private func checkUniqueNames() throws {
        var seen: [String: ParsedNode] = [:]
        for node in nodes {
            if let first = seen[node.config.name] {
                throw error(node, "name", "duplicate node name '\(node.config.name)' (first used by \(first.path))")
            }
            seen[node.config.name] = node
        }
    }

    private func checkHasDevice() throws {
        guard nodes.contains(where: { $0.config.role == .device }) else {
            throw context.error("nodes", "no node has role device; at least one device is needed")
        }
    }

    private func checkRoleRules() throws {
        for node in nodes {
            let config = node.config
            let label = "\(config.role.rawValue) '\(config.name)'"
            switch config.role {
            case .device:
                if config.listen != nil {
                    throw error(node, "listen", "\(label) must not have a listen address; devices only connect upstream")
                }
                if config.address != nil {
                    throw error(node, "address",
                                "\(label) must not have an address; nothing dials a device, it only connects upstream")
                }
                if node.has("replicas") {
                    throw error(node, "replicas", "\(label) cannot have replicas; nothing dials a device (run one device process per camera)")
                }
                if node.has("limits") {
                    throw error(node, "limits", "\(label) accepts no connections, so 'limits' (for listening nodes) does not apply")
                }
                if let key = TopologyDocument.batchKeys.first(where: { node.has($0) }) {
                    throw error(node, key, "\(label) batches no requests of others (it runs its own samples one by one), "
                                    + "so '\(key)' (for edges and clouds) does not apply")
                }
                if config.upstream == nil, let last = stageOrder?.last, !config.stages.contains(last) {
                    throw error(node, "upstream", "\(label) does not host the model's last stage '\(last)', so it needs an upstream")
                }
            case .edge:
                // A resolved replica set without 'listen:' is refused by checkAddresses, which says what to bind.
                if config.listen == nil, config.replicas == nil {
                    throw error(node, "listen", "\(label) needs a listen address (host:port), or listed replicas")
                }
                if config.upstream == nil { throw error(node, "upstream", "\(label) needs an upstream (a cloud node)") }
            case .cloud:
                // A resolved replica set without 'listen:' is refused by checkAddresses, which says what to bind.
                if config.listen == nil, config.replicas == nil {
                    throw error(node, "listen", "\(label) needs a listen address (host:port), or listed replicas")
                }
                if config.upstream != nil {
                    throw error(node, "upstream", "\(label) must not have an upstream; the cloud is the root of the tree")
                }
            }
            if config.upstream == nil, let key = TopologyDocument.linkKeys.first(where: { node.has($0) }) {
                throw error(node, key, "'\(key)' configures the link to the upstream node, but \(label) has no upstream")
            }
        }
    }

    private func checkUpstreamTree() throws {
        for node in nodes {
            guard let upstream = node.config.upstream else { continue }
            if upstream == node.config.name {
                throw error(node, "upstream", "node '\(upstream)' cannot be its own upstream")
            }
            guard indexByName[upstream] != nil else {
                throw error(node, "upstream", "unknown node '\(upstream)'")
            }
        }
        for node in nodes {
            var chain = [node.config.name]
            var current = node.config
            while let next = current.upstream, let index = indexByName[next] {
                if chain.contains(next) {
                    let cycle = (chain + [next]).joined(separator: " -> ")
                    throw error(node, "upstream", "upstream cycle: \(cycle)")
                }
                chain.append(next)
                current = nodes[index].config
            }
        }
        for node in nodes {
            guard let upstream = node.config.upstream, let index = indexByName[upstream] else { continue }
            let role = node.config.role
            let upstreamRole = nodes[index].config.role
            guard role.allowedUpstreamRoles.contains(upstreamRole) else {
                let allowed = role.allowedUpstreamRoles.map(Self.withArticle).joined(separator: " or ")
                throw error(node, "upstream",
                            "\(role.rawValue) '\(node.config.name)' cannot use \(upstreamRole.rawValue) '\(upstream)' as upstream; "
                                + "\(Self.withArticle(role))'s upstream must be \(allowed)"
                                + " (requests flow device -> edge -> cloud)")
            }
        }
    }

    /// "a device", "an edge", "a cloud".
    private static func withArticle(_ role: NodeRole) -> String {
        role == .edge ? "an edge" : "a \(role.rawValue)"
    }

    /// `address` must be dialable; a node whose children would dial a wildcard `listen`
    /// needs an `address`; no two nodes may be dialled at the same address.
    private func checkAddresses() throws {
        let parents = Set(nodes.compactMap(\.config.upstream))
        for node in nodes {
            let config = node.config
            let label = "\(config.role.rawValue) '\(config.name)'"
            if let address = config.address, address.isUnspecified {
                throw error(node, "address",
                            "\(label): 'address' is the address its children dial, and nobody can dial \(Self.shownHost(address)); "
                                + "give a host name or IP of this node, e.g. \(config.role.rawValue).example:\(address.port)")
            }
            if config.address != nil, config.replicas != nil {
                throw error(node, "address", "\(label) has 'replicas', which give the addresses its children dial; drop 'address'")
            }
            if case .resolved(let name) = config.replicas {
                if config.listen == nil {
                    throw error(node, "listen", "\(label) has replicas found by resolving \(name.host), so each needs 'listen:' to bind "
                                    + "(e.g. listen: 0.0.0.0:\(name.port))")
                }
                if name.isUnspecified { throw error(node, "replicas", "\(label): nobody can dial \(Self.shownHost(name)); give a host name that resolves to the replicas") }
            }
            for (i, replica) in (config.replicas?.listed ?? []).enumerated() where replica.address.isUnspecified {
                throw context.error(node.keyPath("replicas[\(i)]"),
                                    "\(label): replica \(i) is dialled at \(replica.address), and nobody can dial \(Self.shownHost(replica.address)); "
                                        + "give the host name or IP of the replica", line: node.line(of: "replicas"))
            }
            if config.address == nil, config.replicas == nil, let listen = config.listen, listen.isUnspecified, parents.contains(config.name) {
                throw error(node, "listen",
                            "\(label) listens on \(listen), but children cannot dial \(Self.shownHost(listen)); "
                                + "give 'address:' with the host name or IP and port they dial "
                                + "(e.g. address: \(config.role.rawValue).example:\(listen.port))")
            }
        }
        var seen: [String: ParsedNode] = [:]
        for node in nodes {
            for endpoint in node.config.dialAddresses {
                let key = "\(endpoint.host.lowercased()):\(endpoint.port)"
                if let first = seen[key] {
                    let which = node.config.replicas != nil ? "replicas" : node.config.address != nil ? "address" : "listen"
                    let owner = first.config.name == node.config.name ? "another replica of this node" : "node '\(first.config.name)'"
                    throw error(node, which, "address \(endpoint) is already used by \(owner)")
                }
                seen[key] = node
            }
        }
        // Metrics addresses: never a node's (or replica's) dial or listen address, and never shared,
        // except wildcard binds (one per host).
        var metricsSeen: [String: ParsedNode] = [:]
        for node in nodes {
            let config = node.config
            let own = [config.metrics].compactMap { $0 } + (config.replicas?.listed.compactMap(\.metrics) ?? [])
            for endpoint in own {
                let key = "\(endpoint.host.lowercased()):\(endpoint.port)"
                if !endpoint.isUnspecified, let owner = seen[key] {
                    throw error(node, "metrics", "metrics address \(endpoint) is also where node '\(owner.config.name)' takes connections")
                }
                // Also for wildcards: the node's own wildcard listen and metrics cannot bind one port.
                if let listen = config.listen, listen == endpoint {
                    throw error(node, "metrics", "metrics address \(endpoint) is also this node's listen address; give the metrics their own port")
                }
                guard !endpoint.isUnspecified else { continue }
                if let first = metricsSeen[key], first.config.name != config.name || config.replicas == nil {
                    throw error(node, "metrics", "metrics address \(endpoint) is already used by node '\(first.config.name)'")
                }
                metricsSeen[key] = node
            }
        }
    }

    /// `0.0.0.0`, or an IPv6 host in brackets (`[::]`).
    private static func shownHost(_ endpoint: Endpoint) -> String {
        endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host
    }

    private func checkThresholdCounts() throws {
        for node in nodes {
            let config = node.config
            let hostsLast = stageOrder.flatMap { $0.last.map(config.stages.contains) } ?? config.isRoot
            let exits = hostsLast ? Array(config.stages.dropLast()) : config.stages
            // No thresholds at all means: use the model's default thresholds for these exits.
            guard !config.thresholds.isEmpty, config.thresholds.count != exits.count else { continue }
            let which = exits.isEmpty
                ? "it hosts only the model's last exit, which needs none"
                : "one per hosted exit other than the model's last: \(exits.joined(separator: ", "))"
            throw error(node, "thresholds",
                        "expected \(exits.count) threshold\(exits.count == 1 ? "" : "s") (\(which)), got \(config.thresholds.count)")
        }
    }

    private func checkTLSFiles(only name: String?) throws {
        let manager = FileManager.default
        for node in nodes where name == nil || node.config.name == name {
            let files = [("ca", "CA certificate", node.config.tls.ca),
                         ("cert", "certificate", node.config.tls.cert),
                         ("key", "private key", node.config.tls.key)]
            for (key, what, url) in files {
                var isDirectory: ObjCBool = false
                let problem: String?
                if !manager.fileExists(atPath: url.path, isDirectory: &isDirectory) {
                    problem = "does not exist"
                } else if isDirectory.boolValue {
                    problem = "is a directory"
                } else if !manager.isReadableFile(atPath: url.path) {
                    problem = "is not readable"
                } else {
                    problem = nil
                }
                if let problem {
                    let keyPath = node.keyPath("tls.\(key)")
                    throw context.error(keyPath,
                                        "node '\(node.config.name)': TLS \(what) file '\(url.path)' \(problem) "
                                            + "(scripts/gen-certs.sh makes the files for a topology)",
                                        line: node.line(of: "tls"))
                }
            }
        }
    }
}
