import BranchyServing
import Dispatch
import NIOCore
import NIOHTTP1

/// Called once per answered request with its HTTP status and the nanoseconds from its head's
/// arrival to the answer being written; `infer` says whether it was an infer request.
public typealias FrontDoorObserver = @Sendable (_ status: Int, _ infer: Bool, _ nanos: UInt64) -> Void

/// Serves the Open Inference Protocol over HTTP/1.1 for one ``InferenceBackend``: health,
/// server and model metadata, Triton's model configuration, and infer (JSON, or JSON then
/// binary tensor data). A body is refused with 413 as soon as it passes the limit (from its
/// Content-Length when it has one) and the connection is closed; a client that stops
/// sending mid-request gets 408 and is closed; every refusal is the protocol's error body.
/// Requests on a connection are answered in order (`HTTPServerPipelineHandler` before it).
public final class FrontDoorHTTPHandler: ChannelInboundHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart

    /// The header giving the JSON part's length when binary tensor data follows it.
    public static let headerLengthField = "Inference-Header-Content-Length"

    let backend: any InferenceBackend
    let limits: InferenceRequest.Limits
    let observer: FrontDoorObserver?
    private var head: HTTPRequestHead?
    /// When the current request's head arrived (uptime nanoseconds).
    private var arrival: UInt64 = 0
    private var body: ByteBuffer?
    /// The request was refused before its end (too large): the rest of it is dropped.
    private var discarding = false
    /// Runs backend calls on this connection's loop (made when the handler is added).
    private var executor: EventLoopTaskExecutor?

    public init(backend: any InferenceBackend, limits: InferenceRequest.Limits = .init(), observer: FrontDoorObserver? = nil) {
        self.backend = backend
        self.limits = limits
        self.observer = observer
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        executor = EventLoopTaskExecutor(loop: context.eventLoop)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            arrival = DispatchTime.now().uptimeNanoseconds
            body = nil
            discarding = false
            if let length = h.headers.first(name: "Content-Length").flatMap({ Int($0) }), length > limits.maxBodyBytes {
                refuse(context, .tooLarge("the request body is \(length) bytes, more than the limit of \(limits.maxBodyBytes)"))
            }
        case .body(var part):
            guard !discarding else { return }
            let total = (body?.readableBytes ?? 0) + part.readableBytes
            guard total <= limits.maxBodyBytes else {
                refuse(context, .tooLarge("the request body is more than the limit of \(limits.maxBodyBytes) bytes"))
                return
            }
            if body == nil { body = part } else { body!.writeBuffer(&part) }
        case .end:
            guard !discarding, let head else { discarding = false; head = nil; return }
            self.head = nil
            answer(head, body: body ?? context.channel.allocator.buffer(capacity: 0), context: context)
            body = nil
        }
    }

    /// Answers `error` at once, before the rest of the body, and closes the connection.
    private func refuse(_ context: ChannelHandlerContext, _ error: ServingError) {
        guard let head else { return }
        discarding = true
        body = nil
        respond(context, head, error: error, close: true)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is IdleStateHandler.IdleStateEvent else { context.fireUserInboundEventTriggered(event); return }
        // Mid-request: the client stopped sending. Between requests: an idle connection.
        if let head, !discarding {
            self.head = nil
            respond(context, head, error: ServingError(status: 408, "the request did not arrive in time"), close: true)
        } else {
            context.close(promise: nil)
        }
    }

    private func answer(_ head: HTTPRequestHead, body: ByteBuffer, context: ChannelHandlerContext) {
        let route: Route
        switch Route.match(method: head.method.rawValue, path: head.uri) {
        case .success(let r): route = r
        case .failure(let e): respond(context, head, error: e); return
        }
        let metadata = backend.metadata
        func known(_ model: String, _ version: String?) -> ServingError? {
            guard model == metadata.name else { return .notFound("no model '\(model)' here; this server has '\(metadata.name)'") }
            if let version, !metadata.versions.contains(version) {
                return .notFound("model '\(model)' has no version '\(version)' (versions: \(metadata.versions.joined(separator: ", ")))")
            }
            return nil
        }
        switch route {
        case .live:
            respond(context, head, status: .ok, body: [])
        case .serverMetadata:
            var w = JSONWriter()
            w.raw("{\"name\":\"branchy\",\"version\":\"2\",\"extensions\":[\"binary_tensor_data\",\"model_configuration\"]}")
            respond(context, head, status: .ok, body: w.bytes)
        case .ready, .modelReady:
            if case .modelReady(let model, let version) = route, let e = known(model, version) { respond(context, head, error: e); return }
            run(context, head) { [backend] () async throws(ServingError) -> ([UInt8], Int?) in
                if let problem = await backend.notReady() { throw ServingError(status: 503, "not ready: \(problem)") }
                return ([], nil)
            }
        case .modelMetadata(let model, let version):
            if let e = known(model, version) { respond(context, head, error: e); return }
            respond(context, head, status: .ok, body: metadata.metadataJSON)
        case .modelConfig(let model, let version):
            if let e = known(model, version) { respond(context, head, error: e); return }
            respond(context, head, status: .ok, body: metadata.configJSON)
        case .infer(let model, let version):
            if let e = known(model, version) { respond(context, head, error: e); return }
            var jsonLength: Int? = nil
            if let field = head.headers.first(name: Self.headerLengthField) {
                guard let n = Int(field.filter { $0 != " " }), n >= 0 else {
                    respond(context, head, error: .badRequest("\(Self.headerLengthField) '\(field)' is not a number of bytes"))
                    return
                }
                jsonLength = n
            }
            let limits = self.limits
            let decoded: Result<InferenceRequest, ServingError> = body.withUnsafeReadableBytes { bytes in
                do throws(ServingError) { return .success(try InferenceRequest.decode(bytes, jsonLength: jsonLength, limits: limits)) } catch {
                    return .failure(error)
                }
            }
            let request: InferenceRequest
            switch decoded {
            case .success(let r): request = r
            case .failure(let e): respond(context, head, error: e); return
            }
            run(context, head) { [backend] () async throws(ServingError) -> ([UInt8], Int?) in
                let response = try await backend.infer(request)
                return response.encoded()
            }
        }
    }

    /// Runs `work` as a task on the connection's loop (it suspends, freeing the loop, while it waits),
    /// then answers with its body (and the JSON part's length when binary data follows) or its error.
    private func run(_ context: ChannelHandlerContext, _ head: HTTPRequestHead,
                     _ work: @escaping @Sendable () async throws(ServingError) -> ([UInt8], Int?)) {
        let loop = context.eventLoop
        let boxed = NIOLoopBound((self, context), eventLoop: loop)
        let arrival = self.arrival
        let promise = loop.makePromise(of: Result<([UInt8], Int?), ServingError>.self)
        let executor = self.executor ?? EventLoopTaskExecutor(loop: loop)
        Task(executorPreference: executor) {
            do throws(ServingError) { promise.succeed(.success(try await work())) } catch { promise.succeed(.failure(error)) }
        }
        promise.futureResult.whenSuccess { result in
            let (handler, context) = boxed.value
            switch result {
            case .success(let (bytes, jsonLength)):
                handler.respond(context, head, status: .ok, body: bytes, jsonLength: jsonLength, arrival: arrival)
            case .failure(let e):
                handler.respond(context, head, error: e, arrival: arrival)
            }
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, error: ServingError, close: Bool = false, arrival: UInt64? = nil) {
        respond(context, head, status: HTTPResponseStatus(statusCode: error.status), body: error.body, close: close, arrival: arrival)
    }

    private func respond(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, status: HTTPResponseStatus, body: [UInt8],
                         jsonLength: Int? = nil, close: Bool = false, arrival: UInt64? = nil) {
        if let observer {
            let nanos = DispatchTime.now().uptimeNanoseconds &- (arrival ?? self.arrival)
            observer(Int(status.code), head.uri.hasSuffix("/infer"), nanos)
        }
        let keepAlive = head.isKeepAlive && !close
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: jsonLength == nil ? "application/json" : "application/octet-stream")
        headers.add(name: "Content-Length", value: "\(body.count)")
        if let jsonLength { headers.add(name: Self.headerLengthField, value: "\(jsonLength)") }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD && !body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
