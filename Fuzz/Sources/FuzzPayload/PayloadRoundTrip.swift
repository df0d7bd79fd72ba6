import BranchyWire
import NIOCore

/// Reads `size` bytes at `data` as the payload of a `type` frame whose header announces exactly
/// its length. A payload that is accepted must re-encode to the same bytes; the accepted frame is
/// passed to `check` for target-specific checks. Errors are only rendered, never fatal.
public func fuzzPayload(of type: MessageType, _ data: UnsafePointer<UInt8>?, _ size: Int,
                        check: (Frame) -> Void = { _ in }) -> CInt {
    let payload = UnsafeRawBufferPointer(start: data, count: size)
    var buffer = ByteBuffer()
    buffer.writeFrameHeader(FrameHeader(type: type, requestID: 1, payloadLength: UInt32(size)))
    buffer.writeBytes(payload)
    let input = buffer
    do {
        guard let frame = try buffer.readFrame() else { return 0 }
        var encoded = ByteBuffer()
        encoded.writeFrame(frame)
        precondition(encoded == input, "\(frame) does not re-encode to the bytes it was read from")
        check(frame)
    } catch {
        _ = "\(error)"
    }
    return 0
}
