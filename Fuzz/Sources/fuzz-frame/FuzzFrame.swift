import BranchyWire
import NIOCore

/// The byte stream of a connection through `FrameDecoder`, as `ByteToMessageHandler`
/// drives it: frames until the decoder needs more bytes or throws, then end of stream.
/// Every frame read must re-encode to exactly the bytes it was read from.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrame(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var buffer = ByteBuffer(bytes: UnsafeRawBufferPointer(start: data, count: size))
    var decoder = FrameDecoder()
    do {
        while true {
            let before = buffer
            // The decoder switches to version 2's compact frames after a version 2 hello.
            let dialect = decoder.dialect
            guard let frame = try decoder.decode(buffer: &buffer) else { break }
            var encoded = ByteBuffer()
            encoded.writeFrame(frame, dialect: dialect)
            precondition(encoded.readableBytesView.elementsEqual(before.readableBytesView.prefix(before.readableBytes - buffer.readableBytes)),
                         "frame \(frame) does not re-encode to the bytes it was read from")
        }
        _ = try decoder.decodeLast(buffer: &buffer, seenEOF: true)
    } catch {
        _ = "\(error)"
    }
    return 0
}
