import FuzzPayload

/// The input is an infer result payload, read in a frame whose header announces exactly its length.
/// A payload that is accepted must re-encode to the same bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInferResult(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzPayload(of: .result, data, size)
}
