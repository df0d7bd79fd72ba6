/// A request the front door refuses, with the HTTP status it answers and the message the
/// protocol's error body (`{"error": "…"}`) carries.
public struct ServingError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The HTTP status: 400 malformed, 404 unknown model or path, 405 wrong method, 408 too slow,
    /// 413 too large, 503 overloaded.
    public var status: Int
    public var message: String

    public init(status: Int, _ message: String) { self.status = status; self.message = message }

    public var description: String { "\(status): \(message)" }

    /// 400: the request is malformed.
    public static func badRequest(_ message: String) -> ServingError { ServingError(status: 400, message) }
    /// 413: the request is larger than the limits allow.
    public static func tooLarge(_ message: String) -> ServingError { ServingError(status: 413, message) }
    /// 404: no such model.
    public static func notFound(_ message: String) -> ServingError { ServingError(status: 404, message) }
    /// 503: the server cannot answer now (full queue, not ready, upstream down).
    public static func unavailable(_ message: String) -> ServingError { ServingError(status: 503, message) }
}
