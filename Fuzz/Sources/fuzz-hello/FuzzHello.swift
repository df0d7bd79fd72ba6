import FuzzPayload

/// The input is a hello payload, read in a frame whose header announces exactly its length.
/// A payload that is accepted must re-encode to the same bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHello(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    // The same bytes behind a version 1 header and behind a version 2 one (which adds the names table).
    _ = fuzzPayload(of: .hello, data, size)
    return fuzzPayload(of: .hello, data, size, version: 2)
}
