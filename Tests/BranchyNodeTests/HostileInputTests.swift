import BranchyModel
import BranchyTensor
import BranchyWire
import Foundation
import NIOCore
import Testing
@testable import BranchyNode

extension Sockets {
    /// A live edge server (threshold 1000, so it answers every sample itself; no cloud runs) fed
    /// malformed frames, protocol violations and bad TLS peers. Each case checks the answer the
    /// code gives, and then that the same server still serves a well-behaved device.
    @Suite struct HostileInputTests {
        /// What a test needs to talk to the edge.
        struct Edge {
            var cluster: Cluster
            var server: InferenceServer
            var fixture: Fixture
            var network: Network
            var port: Int { cluster.edgePort }
            var fingerprint: ModelFingerprint { server.context.fingerprint }
            var deviceHello: Hello { Hello(role: .device, nodeName: "device", fingerprint: fingerprint) }

            func connect(_ identity: WireClient.Identity?) async throws -> WireClient {
                try await WireClient.connect(port: port, group: cluster.group, identity: identity)
            }

            /// A TLS connection with `name`'s certificate from the cluster CA.
            func connect(as name: String = "device") async throws -> WireClient {
                try await connect(.node(name, in: fixture.certs))
            }

            /// A device connection that has completed its hello.
            func ready() async throws -> WireClient {
                let client = try await connect()
                let ack = await client.hello(deviceHello)
                guard case .helloAck(let hello) = ack?.message else {
                    throw TestFailure("expected helloAck, got \(String(describing: ack))")
                }
                #expect(hello.nodeName == "edge" && hello.role == .edge && hello.fingerprint == fingerprint)
                return client
            }

            /// A valid request for sample `sample`.
            func request(_ sample: Int) -> InferRequest { deviceRequest(network: network, fixture: fixture, sample: sample) }
        }

        func withEdge(_ body: (Edge) async throws -> Void) async throws {
            try await Cluster.with(ClusterOptions(edgeThreshold: 1000)) { cluster in
                let fixture = try Fixture.shared()
                let server = try await cluster.startServer("edge")
                let edge = Edge(cluster: cluster, server: server, fixture: fixture, network: try fixture.network())
                try await body(edge)
                try await expectServesWellBehavedDevice(edge)
            }
        }

        func expectServesWellBehavedDevice(_ edge: Edge, sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let client = try await edge.ready()
            await client.send(Frame(requestID: 77, message: .infer(edge.request(0))))
            let answer = await client.nextFrame()
            guard case .result(let r) = answer?.message, answer?.requestID == 77 else {
                Issue.record("afterwards a good request got \(String(describing: answer))", sourceLocation: sourceLocation)
                return
            }
            let want = inProcessAnswer(network: edge.network, policy: ExitPolicy(thresholds: [0, 1000]), codec: .int8,
                                       input: edge.fixture.input(0))
            #expect(r.status == .ok && r.nodeName == "edge" && Int(r.exitIndex) == want.exit, sourceLocation: sourceLocation)
            #expect(Int(r.predictedClass) == want.output.predicted && r.entropy == want.output.entropy, sourceLocation: sourceLocation)
            await client.close()
        }

        /// Expects an error frame with request id 0 and `code`, then the server closing the connection.
        func expectConnectionError(_ client: WireClient, _ code: ErrorCode, mentioning text: String? = nil,
                                   sourceLocation: SourceLocation = #_sourceLocation) async {
            let frame = await client.nextFrame()
            guard case .error(let e) = frame?.message else {
                Issue.record("expected error \(code), got \(String(describing: frame))", sourceLocation: sourceLocation)
                return
            }
            #expect(frame?.requestID == 0, sourceLocation: sourceLocation)
            #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
            if let text { #expect(e.message.contains(text), "\(e)", sourceLocation: sourceLocation) }
            #expect(await client.closed(), "the server left the connection open", sourceLocation: sourceLocation)
            #expect(await client.nextFrame(within: 0) == nil, "frames after the error", sourceLocation: sourceLocation)
        }

        /// Expects one answer for `id` on an open connection, and returns it.
        func expectAnswer(_ client: WireClient, id: UInt64, sourceLocation: SourceLocation = #_sourceLocation) async -> Frame.Message? {
            let frame = await client.nextFrame()
            #expect(frame?.requestID == id, "\(String(describing: frame))", sourceLocation: sourceLocation)
            return frame?.message
        }

        // MARK: - Raw bytes

        static func header(magic: UInt32 = FrameHeader.magic, version: UInt8 = FrameHeader.version, type: UInt8,
                           flags: UInt16 = 0, requestID: UInt64, length: UInt32) -> ByteBuffer {
            var b = ByteBuffer()
            b.writeInteger(magic)
            b.writeInteger(version)
            b.writeInteger(type)
            b.writeInteger(flags)
            b.writeInteger(requestID)
            b.writeInteger(length)
            return b
        }

        /// An infer frame with a hand-made tensor (big-endian fields, element bytes as given).
        static func infer(requestID: UInt64 = 1, stage: UInt8 = 1, codec: UInt8, dims: [UInt32], scale: Float? = nil,
                          zeroPoint: Int8 = 0, byteCount: UInt32, data: [UInt8]) -> ByteBuffer {
            var p = ByteBuffer()
            p.writeInteger(UInt64(9))  // sampleID
            p.writeInteger(UInt32(0))  // deadline
            p.writeInteger(stage)
            p.writeInteger(codec)
            p.writeInteger(UInt8(dims.count))
            for d in dims { p.writeInteger(d) }
            if let scale {
                p.writeInteger(scale.bitPattern)
                p.writeInteger(zeroPoint)
            }
            p.writeInteger(byteCount)
            p.writeBytes(data)
            var frame = header(type: 3, requestID: requestID, length: UInt32(p.readableBytes))
            frame.writeBuffer(&p)
            return frame
        }

        static func float32Bytes(_ values: [Float]) -> [UInt8] {
            values.flatMap { v -> [UInt8] in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        }

        @Test func badMagic() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                await client.send(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: edge\r\n\r\n"))
                await expectConnectionError(client, .badFrame, mentioning: "magic")
            }
        }

        @Test func badMagicBeforeHello() async throws {
            try await withEdge { edge in
                let client = try await edge.connect()
                await client.send(Self.header(magic: 0xDEAD_BEEF, type: 1, requestID: 0, length: 0))
                await expectConnectionError(client, .badFrame, mentioning: "magic")
            }
        }

        @Test func unknownFrameVersion() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                await client.send(Self.header(version: 3, type: 3, requestID: 1, length: 0))
                await expectConnectionError(client, .unsupportedVersion)
            }
        }

        @Test func otherVersionThanTheHelloFixed() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()  // a version 1 hello
                await client.send(Self.header(version: 2, type: 3, requestID: 1, length: 0))
                await expectConnectionError(client, .badFrame, mentioning: "version 1")
            }
        }

        @Test func unknownMessageType() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                await client.send(Self.header(type: 9, requestID: 1, length: 0))
                await expectConnectionError(client, .badFrame, mentioning: "type")
            }
        }

        @Test func reservedFlagsSet() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                await client.send(Self.header(type: 3, flags: 1, requestID: 1, length: 0))
                await expectConnectionError(client, .badFrame, mentioning: "flags")
            }
        }

        /// Rejected from the header alone: no payload is ever sent.
        @Test(arguments: [UInt32(4 << 20) + 1, UInt32.max])
        func payloadLengthOverTheLimit(length: UInt32) async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                await client.send(Self.header(type: 3, requestID: 1, length: length))
                await expectConnectionError(client, .badFrame, mentioning: "exceeds")
            }
        }

        @Test func payloadLengthThatLies() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                var frame = ByteBuffer()
                frame.writeFrame(Frame(requestID: 1, message: .infer(edge.request(1))))
                frame.writeInteger(UInt8(0))  // one byte more than the fields need...
                frame.setInteger(UInt32(frame.readableBytes - FrameHeader.size), at: FrameHeader.size - 4)  // ...and announced
                await client.send(frame)
                await expectConnectionError(client, .badFrame, mentioning: "trailing")
            }
        }

        @Test func truncatedFrameThenClose() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                var bytes = Self.header(type: 3, requestID: 1, length: 500)
                bytes.writeBytes([UInt8](repeating: 7, count: 100))
                await client.send(bytes)
                await client.close()
                #expect(await client.closed())
                // The server sees EOF inside a frame; the good client below shows it survived.
            }
        }

        @Test func zeroSizedTensorDimension() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                await client.send(Self.infer(codec: 2, dims: [8, 0, 7], scale: 0.1, byteCount: 0, data: []))
                await expectConnectionError(client, .badTensor, mentioning: "dims[1]")
            }
        }

        @Test func byteCountDisagreesWithTheShape() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                await client.send(Self.infer(codec: 2, dims: [8, 7, 7], scale: 0.1, byteCount: 391, data: [UInt8](repeating: 1, count: 391)))
                await expectConnectionError(client, .badTensor, mentioning: "byteCount")
            }
        }

        @Test func int8ScaleThatIsNotPositive() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                await client.send(Self.infer(codec: 2, dims: [8, 7, 7], scale: -1, byteCount: 392, data: [UInt8](repeating: 1, count: 392)))
                await expectConnectionError(client, .badTensor, mentioning: "scale")
            }
        }

        @Test(arguments: [Float.nan, .infinity, -.infinity])
        func nonFiniteFloat32Element(value: Float) async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                var values = [Float](repeating: 0.25, count: 392)
                values[17] = value
                await client.send(Self.infer(codec: 0, dims: [8, 7, 7], byteCount: 392 * 4, data: Self.float32Bytes(values)))
                await expectConnectionError(client, .badTensor, mentioning: "data[17]")
            }
        }

        @Test func requestForAStageTheEdgeDoesNotRun() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                for stage in [UInt8(0), 2, 200] {
                    var request = edge.request(1)
                    request.stageIndex = stage
                    await client.send(Frame(requestID: 10 + UInt64(stage), message: .infer(request)))
                    guard case .error(let e) = await expectAnswer(client, id: 10 + UInt64(stage)) else {
                        Issue.record("stage \(stage): no error"); continue
                    }
                    #expect(e.code == .badStage, "\(e)")
                }
                #expect(!(await client.closed(within: 0)), "a request-level error keeps the connection")
            }
        }

        @Test func wellFormedTensorOfTheWrongShape() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                for shape in [[4, 7, 7], [392], [1, 8, 7, 7]] {
                    let tensor = Tensor(shape: shape, data: [Float](repeating: 0.5, count: shape.reduce(1, *)))
                    await client.send(Frame(requestID: 3, message: .infer(InferRequest(sampleID: 1, stageIndex: 1, tensor: tensor, codec: .int8))))
                    guard case .error(let e) = await expectAnswer(client, id: 3) else { Issue.record("shape \(shape): no error"); continue }
                    #expect(e.code == .badTensor, "\(e)")
                }
                #expect(!(await client.closed(within: 0)))
            }
        }

        /// Finite float32 features beyond the protocol's magnitude bound (2^20), which would make the
        /// stage overflow, are refused as `badTensor`.
        @Test func featuresBeyondTheMagnitudeBoundAreRefused() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                let huge = [Float](repeating: 3e38, count: 392)
                await client.send(Self.infer(requestID: 4, codec: 0, dims: [8, 7, 7], byteCount: 392 * 4, data: Self.float32Bytes(huge)))
                await expectConnectionError(client, .badTensor, mentioning: "magnitude at most 2^20")
            }
        }

        /// Features at the magnitude bound: the request must still get exactly one answer (a result
        /// or an error), never silence, and a good request sent right behind it on the same
        /// connection must be answered too.
        @Test func featuresAtTheMagnitudeBoundStillGetAnAnswer() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                let huge = [Float](repeating: 1_048_576, count: 392)
                var bytes = Self.infer(requestID: 4, codec: 0, dims: [8, 7, 7], byteCount: 392 * 4, data: Self.float32Bytes(huge))
                bytes.writeFrame(Frame(requestID: 6, message: .infer(edge.request(2))))
                await client.send(bytes)
                var answers: [UInt64: Frame.Message] = [:]
                for _ in 0..<2 {
                    guard let f = await client.nextFrame() else { break }
                    #expect(answers[f.requestID] == nil, "two answers to \(f.requestID)")
                    answers[f.requestID] = f.message
                }
                #expect(Set(answers.keys) == [4, 6], "\(answers)")
                switch answers[4] {
                case .result(let r): #expect(r.confidence.isFinite && r.entropy.isFinite)
                case .error(let e): #expect(e.code == .internalError || e.code == .badTensor, "\(e)")
                default: Issue.record("no answer to the overflowing request")
                }
                guard case .result(let good) = answers[6] else { Issue.record("no result for the good request"); return }
                #expect(good.status == .ok)
                #expect(!(await client.closed(within: 0)))
            }
        }

        @Test func resultFrameFromAClient() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                let result = InferResult(exitIndex: 0, exitName: "x", nodeName: "device", predictedClass: 1, confidence: 1, entropy: 0, hops: [])
                await client.send(Frame(requestID: 1, message: .result(result)))
                await expectConnectionError(client, .unexpectedMessage)
            }
        }

        @Test func errorFrameFromAClientEndsTheConnectionSilently() async throws {
            try await withEdge { edge in
                let client = try await edge.ready()
                await client.send(Frame(requestID: 0, message: .error(ErrorFrame(code: .internalError, message: "going away"))))
                #expect(await client.closed())
                #expect(client.frames.count == 1)  // the helloAck only
            }
        }
    }
}
