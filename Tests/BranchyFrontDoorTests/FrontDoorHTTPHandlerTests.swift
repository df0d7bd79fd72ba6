import BranchyFrontDoor
import BranchyServing
import Foundation
import NIOCore
import NIOPosix
import Testing

/// The HTTP front door over real TCP on loopback, in front of a backend that answers by rule:
/// class = the index of the largest input value, probabilities = the inputs normalised.
@Suite struct FrontDoorHTTPHandlerTests {
    struct ArgmaxBackend: InferenceBackend {
        var metadata = ModelMetadata(name: "argmax", inputs: [.init(name: "x", datatype: .fp32, shape: [-1, 4])],
                                     outputs: [.init(name: "class", datatype: .int64, shape: [-1]),
                                               .init(name: "probabilities", datatype: .fp32, shape: [-1, 4])], maxBatchSize: 8)
        var ready = true
        func notReady() async -> String? { ready ? nil : "warming up" }
        func infer(_ request: InferenceRequest) async throws(ServingError) -> InferenceResponse {
            guard let x = request.inputs.first, x.shape.last == 4 else { throw .badRequest("x must be (N, 4)") }
            let n = x.values.count / 4
            var classes: [Int64] = [], probabilities: [Float] = []
            for s in 0..<n {
                let row = Array(x.values[(s * 4)..<((s + 1) * 4)])
                classes.append(Int64(row.indices.max { row[$0] < row[$1] }!))
                let sum = row.reduce(0, +)
                probabilities += row.map { $0 / sum }
            }
            let binary = Set(request.outputs.filter(\.binary).map(\.name))
            return InferenceResponse(modelName: metadata.name, modelVersion: "1", id: request.id, parameters: [("exit", .string("device-exit"))],
                                     outputs: [.init(name: "class", shape: [n], values: .int64(classes), binary: binary.contains("class")),
                                               .init(name: "probabilities", shape: [n, 4], values: .fp32(probabilities),
                                                     binary: binary.contains("probabilities"))])
        }
    }

    /// Runs `body` against a server on a free port, with limits small enough to test.
    func withServer(ready: Bool = true, readTimeout: TimeAmount = .seconds(5), _ body: @escaping @Sendable (RawHTTP) throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var backend = ArgmaxBackend()
        backend.ready = ready
        let server = try await FrontDoorServer.start(host: "127.0.0.1", port: 0, backend: backend, group: group,
                                                     limits: .init(maxBodyBytes: 4096), readTimeout: readTimeout)
        let http = RawHTTP(port: server.localAddress!.port!)
        // The client blocks in its socket calls: on a thread of its own, not one the server's
        // backend (Swift concurrency's pool) needs.
        let outcome: Result<Void, any Error> = await withCheckedContinuation { done in
            Thread.detachNewThread { done.resume(returning: Result { try body(http) }) }
        }
        await server.close()
        try? await group.shutdownGracefully()
        try outcome.get()
    }

    @Test func healthMetadataAndConfig() async throws {
        try await withServer { http in
            #expect(try http.request("GET", "/v2/health/live").status == 200)
            #expect(try http.request("GET", "/v2/health/ready").status == 200)
            #expect(try http.request("GET", "/v2/models/argmax/ready").status == 200)
            let meta = try http.request("GET", "/v2/models/argmax")
            #expect(meta.status == 200 && meta.text.contains(#""inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}]"#))
            let config = try http.request("GET", "/v2/models/argmax/config")
            #expect(config.status == 200 && config.text.contains(#""max_batch_size":8"#))
            let server = try http.request("GET", "/v2")
            #expect(server.text.contains("binary_tensor_data"))
        }
        try await withServer(ready: false) { http in
            let r = try http.request("GET", "/v2/health/ready")
            #expect(r.status == 503 && r.text == #"{"error":"not ready: warming up"}"#)
        }
    }

    @Test func inferWithJSON() async throws {
        try await withServer { http in
            let body = #"{"id":"q","inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[[1,5,2,2],[4,1,1,2]]}]}"#
            let r = try http.request("POST", "/v2/models/argmax/infer", body: Array(body.utf8))
            #expect(r.status == 200 && r.headers["content-type"] == "application/json")
            let v = try r.body.withUnsafeBytes { try JSONReader.parse($0) }
            #expect(v["id"] == .string("q") && v["parameters"]?["exit"] == .string("device-exit"))
            #expect(r.text.contains(#"{"name":"class","datatype":"INT64","shape":[2],"data":[1,0]}"#))
            #expect(r.text.contains(#""data":[0.1,0.5,0.2,0.2,0.5,0.125,0.125,0.25]"#))
        }
    }

    @Test func inferWithBinaryTensorData() async throws {
        try await withServer { http in
            let json = #"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"#
                + #""outputs":[{"name":"class","parameters":{"binary_data":true}},{"name":"probabilities"}]}"#
            var data: [UInt8] = []
            for v: Float in [0, 0, 3, 1] { withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 } }
            let r = try http.request("POST", "/v2/models/argmax/infer", body: Array(json.utf8) + data,
                                     headers: [("Inference-Header-Content-Length", "\(json.utf8.count)")])
            #expect(r.status == 200)
            let n = try #require(r.headers["inference-header-content-length"].flatMap(Int.init))
            #expect(Array(r.body[n...]) == [2, 0, 0, 0, 0, 0, 0, 0])
            #expect(String(decoding: r.body[..<n], as: UTF8.self).contains(#""parameters":{"binary_data_size":8}"#))
        }
    }

    @Test func refusalsCarryTheirStatus() async throws {
        try await withServer { http in
            let unknown = try http.request("POST", "/v2/models/other/infer", body: Array("{}".utf8))
            #expect(unknown.status == 404 && unknown.text.contains("no model 'other' here"))
            #expect(try http.request("GET", "/v2/models/argmax/versions/7").status == 404)
            #expect(try http.request("GET", "/v2/models/argmax/infer").status == 405)
            #expect(try http.request("GET", "/nowhere").status == 404)
            let bad = try http.request("POST", "/v2/models/argmax/infer", body: Array(#"{"inputs":[{"name":"x""#.utf8))
            #expect(bad.status == 400 && bad.text.contains("not valid JSON"))
            let lie = try http.request("POST", "/v2/models/argmax/infer", body: Array("{}".utf8), headers: [("Inference-Header-Content-Length", "99")])
            #expect(lie.status == 400 && lie.text.contains("Inference-Header-Content-Length is 99"))
            let backendRefusal = try http.request("POST", "/v2/models/argmax/infer",
                                                  body: Array(#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2,3]}]}"#.utf8))
            #expect(backendRefusal.status == 400 && backendRefusal.text.contains("x must be (N, 4)"))
        }
    }

    @Test func oversizedBodiesAreRefusedFromTheirLength() async throws {
        try await withServer { http in
            // Content-Length over the limit: 413 before the body is read, and the connection closes.
            let head = "POST /v2/models/argmax/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
            let r = try RawHTTP.parse(try http.exchange([Array(head.utf8), [UInt8](repeating: 0x20, count: 8192)], pause: 0.05))
            #expect(r.status == 413 && r.headers["connection"] == "close")
            // Chunked, no length: refused once the bytes pass the limit.
            var chunked = Array("POST /v2/models/argmax/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
            for _ in 0..<3 { chunked += Array("800\r\n".utf8) + [UInt8](repeating: 0x20, count: 2048) + Array("\r\n".utf8) }
            chunked += Array("0\r\n\r\n".utf8)
            #expect(try RawHTTP.parse(try http.exchange([chunked])).status == 413)
        }
    }

    @Test func aClientThatStallsGets408() async throws {
        try await withServer(readTimeout: .milliseconds(300)) { http in
            let head = "POST /v2/models/argmax/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"inputs\":"
            let started = Date()
            let r = try RawHTTP.parse(try http.exchange([Array(head.utf8)], seconds: 5))
            #expect(r.status == 408 && r.text.contains("did not arrive in time"))
            #expect(Date().timeIntervalSince(started) < 3)
        }
    }

    @Test func keepAliveServesRequestsInOrder() async throws {
        try await withServer { http in
            let one = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
            let two = "GET /v2/models/argmax HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let bytes = try http.exchange([Array((one + two).utf8)])
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200 OK") && text.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
            #expect(text.contains(#""name":"argmax""#))
        }
    }
}
