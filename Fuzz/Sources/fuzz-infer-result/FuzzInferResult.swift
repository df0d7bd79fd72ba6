import BranchyWire
import NIOCore

/// The input is an infer result payload, read in a frame whose header announces exactly its length.
/// A payload that is accepted must re-encode to the same bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInferResult(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let payload = UnsafeRawBufferPointer(start: data, count: size)
    var buffer = ByteBuffer()
    buffer.writeFrameHeader(FrameHeader(type: .result, requestID: 1, payloadLength: UInt32(size)))
    buffer.writeBytes(payload)
    let input = buffer
    do {
        guard let frame = try buffer.readFrame() else { return 0 }
        var encoded = ByteBuffer()
        encoded.writeFrame(frame)
        precondition(encoded == input, "\(frame) does not re-encode to the bytes it was read from")
    } catch {
        _ = "\(error)"
    }
    return 0
}
