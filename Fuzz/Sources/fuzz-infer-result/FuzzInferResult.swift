import FuzzPayload

/// The input is an infer result payload, read in a frame whose header announces exactly its length.
/// A payload that is accepted must re-encode to the same bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInferResult(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    // The same bytes as a version 1 payload and as a version 2 one.
    _ = fuzzPayload(of: .result, data, size)
    return fuzzCompactPayload(of: .result, data, size)
}
