import FuzzPayload

/// The input is an infer request payload, read in a frame whose header announces exactly its length.
/// A payload that is accepted must re-encode to the same bytes, and its features must decode.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInferRequest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    // The same bytes as a version 1 payload and as a version 2 one.
    _ = fuzzPayload(of: .infer, data, size) { frame in
        if case .infer(let request) = frame.message { do { _ = try request.tensor() } catch { fatalError("an accepted infer frame whose tensor does not decode: \(error)") } }
    }
    return fuzzCompactPayload(of: .infer, data, size) { frame in
        if case .infer(let request) = frame.message { do { _ = try request.tensor() } catch { fatalError("an accepted infer frame whose tensor does not decode: \(error)") } }
    }
}
