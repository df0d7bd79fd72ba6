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
        try readFrame(limits: limits, dialect: .open)
    }

    /// Reads one complete frame of a connection in `dialect`: before the hello a 20-byte header of
    /// any supported version; on a version-1 connection a 20-byte header of version 1; on a
    /// version-2 connection a compact header. See ``readFrame(limits:)``.
    public mutating func readFrame(limits: WireLimits, dialect: FrameDialect) throws -> Frame? {
        let header: FrameHeader?
        if dialect.isCompact {
            header = try self.peekCompactFrameHeader(maxPayload: limits.maxPayloadBytes)
        } else {
            header = try self.peekFrameHeader(maxPayload: limits.maxPayloadBytes, required: dialect.version)
        }
        guard let header else { return nil }
        let length = Int(header.payloadLength)
        guard self.readableBytes >= header.size + length else {
            return nil
        }
        let payload = self.getSlice(at: self.readerIndex + header.size, length: length)!
        let message = try Self.parsePayload(payload, type: header.type, limits: limits, version: header.version, names: dialect.names)
        self.moveReaderIndex(forwardBy: header.size + length)
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
        writeFrame(frame, dialect: .open)
    }

    /// Writes `frame` as a connection in `dialect` lays it out; returns the bytes written, which
    /// always equal ``Frame/encodedSize(in:)``.
    @discardableResult
    public mutating func writeFrame(_ frame: Frame, dialect: FrameDialect) -> Int {
        let version = frame.payloadVersion(in: dialect)
        var written: Int
        let payloadStart: Int
        let lengthAt: Int?
        if frame.usesCompactHeader(in: dialect) {
            written = self.writeCompactFrameHeader(type: frame.message.type, requestID: frame.requestID,
                                                   payloadLength: frame.payloadSize(in: dialect))
            payloadStart = self.writerIndex
            lengthAt = nil
        } else {
            let start = self.writerIndex
            let headerVersion: UInt8 = dialect.version ?? {
                if case .hello = frame.message { return version }
                if case .helloAck = frame.message { return version }
                return FrameHeader.version
            }()
            written = self.writeFrameHeader(FrameHeader(type: frame.message.type, requestID: frame.requestID, payloadLength: 0,
                                                        version: headerVersion))
            payloadStart = self.writerIndex
            lengthAt = start + FrameHeader.size - 4
        }
        switch frame.message {
        case .hello(let hello), .helloAck(let hello):
            written += self.writeHello(hello, version: version)
        case .infer(let request):
            written += version >= 2 ? self.writeCompactInferRequest(request) : self.writeInferRequest(request)
        case .result(let result):
            written += version >= 2 ? self.writeCompactInferResult(result, names: dialect.names) : self.writeInferResult(result)
        case .error(let error):
            written += self.writeErrorFrame(error)
        case .goodbye, .statsRequest:
            break
        case .stats(let links):
            written += self.writeStats(links)
        }
        if let lengthAt {
            self.setInteger(UInt32(clamping: self.writerIndex - payloadStart), at: lengthAt)
        }
        return written
    }

    private static func parsePayload(_ payload: ByteBuffer, type: MessageType, limits: WireLimits,
                                     version: UInt8, names: NameTable) throws -> Frame.Message {
        var reader = PayloadReader(buffer: payload, message: type)
        let message: Frame.Message
        switch type {
        case .hello:
            message = .hello(try reader.readHello(frameVersion: version))
        case .helloAck:
            message = .helloAck(try reader.readHello(frameVersion: version))
        case .infer:
            message = .infer(version >= 2 ? try reader.readCompactInferRequest(limits: limits) : try reader.readInferRequest(limits: limits))
        case .result:
            message = .result(version >= 2 ? try reader.readCompactInferResult(names: names) : try reader.readInferResult())
        case .error:
            message = .error(try reader.readErrorFrame())
        case .goodbye:
            message = .goodbye
        case .statsRequest:
            message = .statsRequest
        case .stats:
            message = .stats(try reader.readStats())
        }
        try reader.finish()
        return message
    }
}
