import BranchyLink
import BranchyObservability
import BranchyTopology
import BranchyTransport
import BranchyWire
import Dispatch
import Foundation
import Logging
import NIOCore

/// A node's way upstream: one `UpstreamLink` per replica of the upstream node (one link when it
/// runs as one process). Requests go to the ready replica with the fewest outstanding requests
/// (ties taken in turn); a request lost with its replica's connection, or refused as overloaded,
/// is sent again to another ready replica while its deadline allows (inference is idempotent).
/// A replica that comes back is dialled again within about a second and takes requests as soon
/// as its hello is done. For a replica set given as a host name, the name is resolved again every
/// `resolveInterval`, adding links for new addresses and retiring links whose address went away.
///
/// All mutable state lives in a box bound to `loop`, the loop of every link.
public final class UpstreamPool: Sendable {
    public let loop: any EventLoop
    let context: NodeContext
    let logger: Logger
    let metrics: NodeMetrics?
    let linkName: String
    /// How often a resolved replica set's host name is looked up again.
    static let resolveInterval: TimeAmount = .seconds(5)
    /// How often links to replicas send a heartbeat (`statsRequest`), and how long one may stay
    /// unanswered before the replica is taken for hung.
    static let heartbeatMillis: Int64 = 500
    static let heartbeatTimeoutMillis: Int64 = 2_000

    private struct Member {
        var key: String
        var link: UpstreamLink
    }
    private struct State {
        var members: [Member] = []
        /// Links taken out of the set (replica gone from DNS or the topology): draining, then stopped.
        var retired: [UpstreamLink] = []
        var next = 0
        var stopped = false
        var started = false
        /// Replicas out of rotation after consecutive failures, keyed by `Member.key`.
        var outliers = OutlierDetector()
    }
    private let box: NIOLoopBoundBox<State>
    private var state: State {
        _read { yield box.value }
        _modify { yield &box.value }
    }

    /// Makes the links to every listed replica (or the upstream's one address); a resolved set
    /// starts empty and fills at `start()`.
    public init(context: NodeContext, loop: any EventLoop, logger: Logger, metrics: NodeMetrics? = nil) throws {
        guard let up = context.upstream else { throw NodeError("node '\(context.config.name)' has no upstream") }
        self.loop = loop
        self.context = context
        self.logger = logger
        self.metrics = metrics
        self.linkName = "\(context.config.name)->\(up.name)"
        var members: [Member] = []
        switch up.replicas {
        case .listed(let replicas):
            for (i, r) in replicas.enumerated() {
                members.append(Member(key: "\(r.address)", link: try UpstreamLink(context: context, loop: loop, logger: logger,
                                                                                  endpoint: r.address, replicaLabel: "\(i)", metrics: metrics)))
            }
        case .resolved:
            break
        case nil:
            members.append(Member(key: "\(up.dialAddress!)", link: try UpstreamLink(context: context, loop: loop, logger: logger, metrics: metrics)))
        }
        box = NIOLoopBoundBox.makeBoxSendingValue(State(members: members), eventLoop: loop)
        metrics?.onScrape { [weak self] in await self?.publishGauges() }
    }

    private var replicated: Bool { context.upstream?.isReplicated ?? false }

    /// Starts every link (and, for a resolved set, the lookups).
    public func start() {
        loop.execute {
            guard !self.state.started else { return }
            self.state.started = true
            for m in self.state.members { self.startLink(m.link, heartbeat: self.replicated) }
            if case .resolved(let name) = self.context.upstream?.replicas {
                self.resolve(name)
                self.loop.scheduleRepeatedTask(initialDelay: Self.resolveInterval, delay: Self.resolveInterval) { task in
                    if self.state.stopped { task.cancel() } else { self.resolve(name) }
                }
            }
        }
    }

    private func startLink(_ link: UpstreamLink, heartbeat: Bool) {
        link.start()
        if heartbeat { link.startHeartbeat(intervalMillis: Self.heartbeatMillis, timeoutMillis: Self.heartbeatTimeoutMillis) }
    }

    /// Completes once some replica is ready, or fails after `timeoutMillis`.
    public func waitUntilReady(timeoutMillis: Int64) -> EventLoopFuture<Void> {
        let deadline = NIODeadline.now() + .milliseconds(timeoutMillis)
        let promise = loop.makePromise(of: Void.self)
        @Sendable func poll() {
            if state.members.contains(where: { $0.link.isReady }) { promise.succeed(()); return }
            if NIODeadline.now() >= deadline {
                let name = context.upstream?.name ?? "?"
                promise.fail(UpstreamFailure.unavailable("no handshake with \(name) within \(timeoutMillis) ms"))
                return
            }
            loop.scheduleTask(in: .milliseconds(10)) { poll() }
        }
        loop.execute { poll() }
        return promise.futureResult
    }

    /// Whether some replica is connected with its hello done. Read on `loop`.
    public var isReady: Bool { state.members.contains { $0.link.isReady } }

    /// Nil when some replica of the upstream is ready; otherwise why not. From any thread.
    public func notReadyBecause() async -> String? {
        let (up, problems) = (try? await loop.submit { (self.isReady, self.state.members.compactMap(\.link.lastProblem)) }.get()) ?? (false, [])
        guard !up else { return nil }
        let why = problems.isEmpty ? "" : ": " + problems.prefix(3).joined(separator: "; ")
        return "no connection to upstream '\(context.upstream?.name ?? "?")'\(why)"
    }

    /// Sends a request to a replica; on a lost connection or an overloaded replica, again to
    /// another while the deadline allows. The future completes exactly once, on `loop`.
    public func send(_ request: InferRequest) -> EventLoopFuture<UpstreamReply> {
        if loop.inEventLoop, state.members.count == 1 { return state.members[0].link.send(request) }
        let promise = loop.makePromise(of: UpstreamReply.self)
        if loop.inEventLoop {
            attempt(request, promise, due: nil, tried: [])
        } else {
            loop.execute { self.attempt(request, promise, due: nil, tried: []) }
        }
        return promise.futureResult
    }

    /// The ready link with the fewest outstanding requests, not in `tried`; ties go in turn.
    /// Ejected replicas are passed over while any other ready replica is left.
    private func pick(excluding tried: [ObjectIdentifier]) -> UpstreamLink? {
        let members = state.members
        guard !members.isEmpty else { return nil }
        let now = NIODeadline.now()
        let start = state.next % members.count
        state.next = start + 1
        for allowEjected in [false, true] {
            var best: UpstreamLink?
            var bestLoad = Int.max
            for k in 0..<members.count {
                let m = members[(start + k) % members.count]
                guard m.link.isReady, !tried.contains(ObjectIdentifier(m.link)) else { continue }
                guard allowEjected || !state.outliers.isEjected(m.key, at: now) else { continue }
                let o = m.link.outstanding
                if o.inFlight + o.queued < bestLoad { best = m.link; bestLoad = o.inFlight + o.queued }
            }
            if let best { return best }
        }
        return nil
    }

    /// Counts an outcome of a request to `link` for outlier ejection.
    private func record(_ link: UpstreamLink, failure: UpstreamFailure?) {
        guard let member = state.members.first(where: { $0.link === link }) else { return }
        let now = NIODeadline.now()
        guard let failure else {
            state.outliers.succeeded(member.key, at: now)
            return
        }
        guard failure.countsAgainstReplica, let ejection = state.outliers.failed(member.key, at: now) else { return }
        metrics?.ejected(link: linkName, replica: link.replicaLabel)
        let millis = ejection.duration.nanoseconds / 1_000_000
        logger.warning("upstream replica \(member.key) failed \(ejection.failures) requests in a row (last: \(failure)); out of rotation for \(millis) ms")
    }

    private func attempt(_ request: InferRequest, _ promise: EventLoopPromise<UpstreamReply>, due: NIODeadline?, tried: [ObjectIdentifier]) {
        if state.members.count == 1, tried.isEmpty {
            state.members[0].link.send(request).cascade(to: promise)
            return
        }
        guard let link = pick(excluding: tried) else {
            let name = context.upstream?.name ?? "?"
            promise.fail(UpstreamFailure.unavailable(tried.isEmpty ? "no replica of \(name) is up" : "no other replica of \(name) is up"))
            return
        }
        // The deadline runs from the first attempt: a retry gets what is left of it.
        let ms = linkDeadline(linkMillis: context.config.deadlineMillis, requestMillis: request.deadlineMillis)
        let due = due ?? NIODeadline.now() + .milliseconds(Int64(ms))
        var req = request
        let left = (due - NIODeadline.now()).nanoseconds / 1_000_000
        guard left >= 1 else { promise.fail(UpstreamFailure.deadline(ms)); return }
        req.deadlineMillis = UInt32(min(Int64(UInt32.max), left))
        link.send(req).whenComplete { result in
            switch result {
            case .success(let reply):
                self.record(link, failure: nil)
                promise.succeed(reply)
            case .failure(let error):
                let failure = (error as? UpstreamFailure) ?? .unavailable("\(error)")
                self.record(link, failure: failure)
                if failure.isRetryable, !self.state.stopped, NIODeadline.now() < due,
                   self.state.members.contains(where: { $0.link.isReady && $0.link !== link && !tried.contains(ObjectIdentifier($0.link)) }) {
                    self.metrics?.retried(link: self.linkName)
                    self.attempt(request, promise, due: due, tried: tried + [ObjectIdentifier(link)])
                } else {
                    promise.fail(failure)
                }
            }
        }
    }

    /// Stops every link.
    public func stop() -> EventLoopFuture<Void> {
        loop.flatSubmit {
            self.state.stopped = true
            let links = self.state.members.map(\.link) + self.state.retired
            return EventLoopFuture.andAllComplete(links.map { $0.stop() }, on: self.loop)
        }
    }

    /// Applies a reloaded topology: the window and deadline of every link, and the addresses
    /// (new replicas or a new address are dialled, links to those gone are retired once their
    /// requests are answered). A resolved set keeps its name (a reload that changes it is refused).
    func reconfigure(_ new: NodeContext) {
        loop.execute {
            for m in self.state.members { m.link.reconfigure(maxInFlight: new.config.maxInFlight, deadlineMillis: new.config.deadlineMillis) }
            switch new.upstream?.replicas {
            case .listed(let replicas):
                self.setMembers(replicas.enumerated().map { ("\($0.element.address)", $0.element.address, "\($0.offset)") }, context: new)
            case nil:
                if let address = new.upstream?.dialAddress { self.setMembers([("\(address)", address, "0")], context: new) }
            case .resolved:
                break
            }
        }
    }

    /// Makes the set of links the given (key, address, label) list. On `loop`.
    private func setMembers(_ wanted: [(key: String, address: Endpoint, label: String)], context: NodeContext) {
        guard !state.stopped else { return }
        var kept: [Member] = []
        for w in wanted {
            if let m = state.members.first(where: { $0.key == w.key }) {
                kept.append(m)
            } else if let link = try? UpstreamLink(context: context, loop: loop, logger: logger, endpoint: w.address,
                                                   replicaLabel: w.label, metrics: metrics) {
                logger.info("upstream replica \(w.address) added")
                kept.append(Member(key: w.key, link: link))
                if state.started { startLink(link, heartbeat: context.upstream?.isReplicated ?? false) }
            }
        }
        for m in state.members where !kept.contains(where: { $0.key == m.key }) {
            state.outliers.remove(m.key)
            logger.info("upstream replica \(m.key) removed; retiring its link once its requests are answered")
            state.retired.append(m.link)
            retire(m.link)
        }
        state.members = kept
    }

    /// Stops `link` once nothing is outstanding on it (or after its deadline at most).
    private func retire(_ link: UpstreamLink) {
        let o = link.outstanding
        if o.inFlight + o.queued == 0 {
            _ = link.stop()
            return
        }
        loop.scheduleTask(in: .milliseconds(100)) { self.retire(link) }
    }

    /// Looks `name` up off the loop, then updates the links on it.
    private func resolve(_ name: Endpoint) {
        DispatchQueue.global().async {
            let addresses = Self.lookUp(name.host)
            self.loop.execute {
                guard !addresses.isEmpty else {
                    self.logger.warning("\(name.host) resolved to no address; keeping the \(self.state.members.count) replicas known")
                    return
                }
                let wanted = addresses.map { a in (key: "\(a):\(name.port)", address: Endpoint(host: a, port: name.port), label: "\(a)") }
                if Set(wanted.map(\.key)) != Set(self.state.members.map(\.key)) {
                    self.logger.info("\(name.host) resolves to \(addresses.joined(separator: ", "))")
                }
                self.setMembers(wanted, context: self.context)
            }
        }
    }

    /// The IPv4 and IPv6 addresses of `host`, sorted (empty when it does not resolve).
    static func lookUp(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var out = Set<String>()
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
                out.insert(String(decoding: bytes, as: UTF8.self))
            }
            p = ai.pointee.ai_next
        }
        return out.sorted()
    }

    // MARK: - Totals, summed over every replica

    /// This link's totals over every replica, as one `LinkTotals`. Read on `loop`.
    public var totals: LinkTotals {
        let all = (state.members.map(\.link) + state.retired).map(\.totals)
        return LinkTotals(link: linkName, connections: all.reduce(0) { $0 + $1.connections },
                          handshakeBytes: all.reduce(0) { $0 + $1.handshakeBytes },
                          bytesSent: all.reduce(0) { $0 + $1.bytesSent }, bytesReceived: all.reduce(0) { $0 + $1.bytesReceived })
    }

    /// Successful handshakes with every replica. Read on `loop`.
    public var connections: Int { Int(totals.connections) }

    /// What the upstream node reports of its own upstream link, asked of a ready replica.
    public func upstreamTotals(timeoutMillis: Int64 = 2_000) -> EventLoopFuture<[LinkTotals]> {
        loop.flatSubmit {
            guard let link = self.state.members.first(where: { $0.link.isReady })?.link ?? self.state.members.first?.link else {
                return self.loop.makeFailedFuture(UpstreamFailure.unavailable("no replica of the upstream is known"))
            }
            return link.upstreamTotals(timeoutMillis: timeoutMillis)
        }
    }

    private func publishGauges() async {
        guard let metrics else { return }
        _ = try? await loop.submit {
            for m in self.state.members {
                let o = m.link.outstanding
                metrics.setUpstream(link: self.linkName, replica: m.link.replicaLabel, inFlight: o.inFlight, queued: o.queued, up: m.link.isReady)
            }
        }.get()
    }
}

extension UpstreamFailure {
    /// Whether another replica may answer what this one could not: a lost or refused connection,
    /// a replica shutting down or overloaded. Deadlines, answers with errors and impossible answers are final.
    var isRetryable: Bool {
        switch self {
        case .unavailable, .overloaded: return true
        case .remote(let e): return e.code == .shuttingDown || e.code == .tooManyRequests || e.code == .upstreamUnavailable
        case .deadline, .invalidAnswer: return false
        }
    }
}
