import BranchyTopology
import BranchyTransport
import Foundation
import NIOConcurrencyHelpers

extension InferenceServer {
    /// Re-reads the topology at `path` (on SIGHUP) and applies what may change while serving:
    /// thresholds, the upstream codec, failure policy, deadline and window, `precision:`, the upstream's
    /// replicas, and the handshake and idle timeouts of new connections. Requests in flight finish
    /// with what they started with; the next ones use the new values. A topology that does not
    /// load, or that changes what needs a restart (name, role, stages, model, addresses, TLS
    /// files, connection caps and budgets, batching), is refused: the running one stays.
    /// Returns a one-line account of what changed, or throws why the reload was refused.
    @discardableResult
    public func reload(topologyPath path: String) throws -> String {
        let old = current
        do {
            let new = try NodeContext.load(topologyPath: path, nodeName: context.config.name, replica: context.replica, reusing: old)
            try Self.checkReloadable(from: context, to: new)
            let changes = Self.describeChanges(from: old, to: new)
            live.withLockedValue { $0 = (new, StageRunner(context: new)) }
            link?.reconfigure(new)
            metrics?.setThresholds(new.policy.thresholds)
            metrics?.reloaded(applied: true)
            return changes
        } catch {
            metrics?.reloaded(applied: false)
            throw error
        }
    }

    /// Throws, naming the key, when `new` changes what only a restart can.
    static func checkReloadable(from old: NodeContext, to new: NodeContext) throws {
        let a = old.config, b = new.config
        var fixed: [String] = []
        if old.fingerprint != new.fingerprint || old.topology.modelDirectory != new.topology.modelDirectory { fixed.append("model") }
        if a.role != b.role { fixed.append("role") }
        if a.stages != b.stages { fixed.append("stages") }
        if a.listen != b.listen { fixed.append("listen") }
        if a.address != b.address { fixed.append("address") }
        if a.metrics != b.metrics { fixed.append("metrics") }
        if a.upstream != b.upstream { fixed.append("upstream") }
        if a.tls != b.tls { fixed.append("tls") }
        if a.protocolVersion != b.protocolVersion { fixed.append("protocol") }
        if a.maxBatch != b.maxBatch { fixed.append("maxBatch") }
        if a.maxBatchDelayMicros != b.maxBatchDelayMicros { fixed.append("maxBatchDelayMicros") }
        var la = a.limits, lb = b.limits
        (la.handshakeTimeoutMillis, la.idleTimeoutMillis) = (0, 0)
        (lb.handshakeTimeoutMillis, lb.idleTimeoutMillis) = (0, 0)
        if la != lb { fixed.append("limits (other than handshakeTimeoutMs and idleTimeoutMs)") }
        if Set(old.children.map(\.name)) != Set(new.children.map(\.name)) { fixed.append("the nodes whose upstream this is") }
        let oldReplicas = old.upstream?.replicas, newReplicas = new.upstream?.replicas
        func resolved(_ r: ReplicaSet?) -> Bool { if case .resolved = r { return true } else { return false } }
        if oldReplicas != newReplicas, resolved(oldReplicas) || resolved(newReplicas) { fixed.append("the upstream's replicas host name") }
        guard fixed.isEmpty else {
            throw NodeError("node '\(a.name)': the new topology changes \(fixed.joined(separator: ", ")), which takes a restart")
        }
    }

    /// "thresholds [0.55] -> [0.3]; codec int8 -> int4" or "no changes".
    static func describeChanges(from old: NodeContext, to new: NodeContext) -> String {
        let a = old.config, b = new.config
        var out: [String] = []
        if old.policy != new.policy { out.append("thresholds \(old.policy.thresholds) -> \(new.policy.thresholds)") }
        if a.codec != b.codec { out.append("codec \(a.codec) -> \(b.codec)") }
        if a.precision != b.precision { out.append("precision \(a.precision.rawValue) -> \(b.precision.rawValue)") }
        if a.onUpstreamFailure != b.onUpstreamFailure { out.append("onUpstreamFailure \(a.onUpstreamFailure.rawValue) -> \(b.onUpstreamFailure.rawValue)") }
        if a.deadlineMillis != b.deadlineMillis { out.append("deadlineMs \(a.deadlineMillis) -> \(b.deadlineMillis)") }
        if a.maxInFlight != b.maxInFlight { out.append("maxInFlight \(a.maxInFlight) -> \(b.maxInFlight)") }
        if old.upstream?.dialAddresses != new.upstream?.dialAddresses {
            out.append("upstream addresses \(old.upstream?.dialAddresses.map(\.description) ?? []) -> \(new.upstream?.dialAddresses.map(\.description) ?? [])")
        }
        if a.limits != b.limits { out.append("limits") }
        return out.isEmpty ? "no changes" : out.joined(separator: "; ")
    }
}
