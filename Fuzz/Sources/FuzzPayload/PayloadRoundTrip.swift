import BranchyWire
import NIOCore

/// Reads `size` bytes at `data` as the payload of a `type` frame whose header announces exactly
/// its length. A payload that is accepted must re-encode to the same bytes; the accepted frame is
/// passed to `check` for target-specific checks. Errors are only rendered, never fatal.
public func fuzzPayload(of type: MessageType, _ data: UnsafePointer<UInt8>?, _ size: Int, version: UInt8 = 1,
                        check: (Frame) -> Void = { _ in }) -> CInt {
    let payload = UnsafeRawBufferPointer(start: data, count: size)
    var buffer = ByteBuffer()
    buffer.writeFrameHeader(FrameHeader(type: type, requestID: 1, payloadLength: UInt32(size), version: version))
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

/// The names table the version 2 payload targets decode results with.
public let fuzzNames = NameTable(["device", "edge", "cloud", "device-exit", "edge-exit", "cloud-exit", "device->edge", "edge->cloud"])

/// As ``fuzzPayload(of:_:_:check:)``, for a version 2 payload behind a compact header on a
/// connection whose names are ``fuzzNames``.
public func fuzzCompactPayload(of type: MessageType, _ data: UnsafePointer<UInt8>?, _ size: Int,
                               check: (Frame) -> Void = { _ in }) -> CInt {
    let payload = UnsafeRawBufferPointer(start: data, count: size)
    var buffer = ByteBuffer()
    buffer.writeCompactFrameHeader(type: type, requestID: 1, payloadLength: size)
    buffer.writeBytes(payload)
    let input = buffer
    let dialect = FrameDialect.v2(names: fuzzNames)
    do {
        guard let frame = try buffer.readFrame(limits: .default, dialect: dialect) else { return 0 }
        var encoded = ByteBuffer()
        encoded.writeFrame(frame, dialect: dialect)
        precondition(encoded == input, "\(frame) does not re-encode to the bytes it was read from (version 2)")
        precondition(frame.encodedSize(in: dialect) == input.readableBytes, "\(frame): computed size differs from the bytes read")
        check(frame)
    } catch {
        _ = "\(error)"
    }
    return 0
}
