import NIOCore

extension ByteBuffer {
    /// Reads one complete frame.
    ///
    /// The header is checked field by field as bytes arrive; an announced payload above
    /// `limits.maxPayloadBytes` is rejected from the header alone. The payload is then
    /// parsed field by field and must be consumed exactly.
    ///
    /// - Returns: the frame, or `nil` when the buffer does not yet hold a whole frame, in
    ///   which case nothing is consumed.
    /// - Throws: ``WireError``; the reader index is left unchanged.
    public mutating func readFrame(limits: WireLimits = .default) throws -> Frame? {
        guard let header = try self.peekFrameHeader(maxPayload: limits.maxPayloadBytes) else {
            return nil
        }
        let length = Int(header.payloadLength)
        guard self.readableBytes >= FrameHeader.size + length else {
            return nil
        }
        let payload = self.getSlice(at: self.readerIndex + FrameHeader.size, length: length)!
        let message = try Self.parsePayload(payload, type: header.type, limits: limits)
        self.moveReaderIndex(forwardBy: FrameHeader.size + length)
        return Frame(requestID: header.requestID, message: message)
    }

    /// Reads one complete frame, accepting payloads up to `maxPayload` bytes and the
    /// default tensor limits. See ``readFrame(limits:)``.
    public mutating func readFrame(maxPayload: Int) throws -> Frame? {
        var limits = WireLimits.default
        limits.maxPayloadBytes = maxPayload
        return try self.readFrame(limits: limits)
    }

    /// Writes `frame` (header and payload) and returns the number of bytes written,
    /// which always equals ``Frame/encodedSize``.
    ///
    /// Writing does not validate; values beyond a field's range are clamped. Call
    /// ``Frame/validate(limits:)`` first (``FrameEncoder`` does) to be sure the peer accepts it.
    @discardableResult
    public mutating func writeFrame(_ frame: Frame) -> Int {
        let start = self.writerIndex
        var written = self.writeFrameHeader(FrameHeader(type: frame.message.type, requestID: frame.requestID, payloadLength: 0))
        let payloadStart = self.writerIndex
        switch frame.message {
        case .hello(let hello), .helloAck(let hello):
            written += self.writeHello(hello)
        case .infer(let request):
            written += self.writeInferRequest(request)
        case .result(let result):
            written += self.writeInferResult(result)
        case .error(let error):
            written += self.writeErrorFrame(error)
        case .goodbye:
            break
        }
        let payloadLength = UInt32(clamping: self.writerIndex - payloadStart)
        self.setInteger(payloadLength, at: start + FrameHeader.size - 4)
        return written
    }

    private static func parsePayload(_ payload: ByteBuffer, type: MessageType, limits: WireLimits) throws -> Frame.Message {
        var reader = PayloadReader(buffer: payload, message: type)
        let message: Frame.Message
        switch type {
        case .hello:
            message = .hello(try reader.readHello())
        case .helloAck:
            message = .helloAck(try reader.readHello())
        case .infer:
            message = .infer(try reader.readInferRequest(limits: limits))
        case .result:
            message = .result(try reader.readInferResult())
        case .error:
            message = .error(try reader.readErrorFrame())
        case .goodbye:
            message = .goodbye
        }
        try reader.finish()
        return message
    }
}
