import BranchyServing

/// What a front door serves: one model, its readiness, and its answers.
public protocol InferenceBackend: Sendable {
    /// The model's name, versions, tensors and largest batch.
    var metadata: ModelMetadata { get }
    /// Nil when the model can answer now; otherwise why not (answered as 503).
    func notReady() async -> String?
    /// Answers a decoded request: outputs for the exit that answered, parameters saying how.
    func infer(_ request: InferenceRequest) async throws(ServingError) -> InferenceResponse
}
