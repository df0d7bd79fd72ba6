import BranchyModel
import BranchyWire

extension InferRequest {
    /// The thresholds this request's sample leaves by: `base` with the request's own
    /// (``InferRequest/exitThresholds``) in place, or nil when it carries none.
    func policy(over base: ExitPolicy) -> ExitPolicy? {
        exitThresholds.isEmpty ? nil : base.overriding(Dictionary(uniqueKeysWithValues: exitThresholds.map { (Int($0.key), $0.value) }))
    }
}
