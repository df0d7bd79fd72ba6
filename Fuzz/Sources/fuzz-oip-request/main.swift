import BranchyServing

/// The input is an infer request body as the front door gets it: a first byte choosing whether
/// an `Inference-Header-Content-Length` comes with it (bit 0; its value, a big-endian `UInt16`,
/// follows), then the body. A decoded request must hold, for every input, exactly as many values
/// as its shape's elements, all finite; an error must have a 400 or 413 status.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOIPRequest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size > 0, let data else { return 0 }
    var body = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    var jsonLength: Int? = nil
    if data[0] & 1 == 1 {
        guard size >= 3 else { return 0 }
        jsonLength = Int(data[1]) << 8 | Int(data[2])
        body = UnsafeRawBufferPointer(start: data + 3, count: size - 3)
    }
    do {
        let request = try InferenceRequest.decode(body, jsonLength: jsonLength, limits: .init(maxBodyBytes: 1 << 20, maxElements: 1 << 16))
        for input in request.inputs {
            precondition(input.values.count == input.shape.reduce(1, *), "\(input.name): \(input.values.count) values for \(input.shape)")
            precondition(input.values.allSatisfy(\.isFinite), "\(input.name): a value that is not finite")
        }
    } catch {
        precondition(error.status == 400 || error.status == 413, "status \(error.status)")
        _ = error.body
    }
    return 0
}
