import BranchyTopology
import BranchyWire

extension BranchyTopology.NodeRole {
    /// The role as carried in a hello frame.
    public var wireRole: BranchyWire.NodeRole {
        switch self {
        case .device: return .device
        case .edge: return .edge
        case .cloud: return .cloud
        }
    }
}
