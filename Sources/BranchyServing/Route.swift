/// The Open Inference Protocol's HTTP/REST endpoints (and Triton's model configuration, which
/// perf_analyzer asks for), as a request's method and path select them.
public enum Route: Equatable, Sendable {
    /// `GET /v2/health/live`
    case live
    /// `GET /v2/health/ready`
    case ready
    /// `GET /v2`: the server's name, version and extensions.
    case serverMetadata
    /// `GET /v2/models/{name}[/versions/{v}]`
    case modelMetadata(model: String, version: String?)
    /// `GET /v2/models/{name}[/versions/{v}]/ready`
    case modelReady(model: String, version: String?)
    /// `GET /v2/models/{name}[/versions/{v}]/config` (Triton's extension)
    case modelConfig(model: String, version: String?)
    /// `POST /v2/models/{name}[/versions/{v}]/infer`
    case infer(model: String, version: String?)

    /// The route of `method` and `path` (a query string is ignored), or the error to answer:
    /// 404 for an unknown path, 405 for a known path with the wrong method.
    public static func match(method: String, path: String) -> Result<Route, ServingError> {
        let bare = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? path
        var parts = bare.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard parts.first == "v2" else { return .failure(.notFound("no endpoint \(bare)")) }
        parts.removeFirst()
        let route: Route
        let post: Bool
        switch parts.count {
        case 0: (route, post) = (.serverMetadata, false)
        case 2 where parts[0] == "health" && parts[1] == "live": (route, post) = (.live, false)
        case 2 where parts[0] == "health" && parts[1] == "ready": (route, post) = (.ready, false)
        default:
            guard parts.count >= 2, parts[0] == "models", let model = parts[1].removingPercentEncoding, !model.isEmpty else {
                return .failure(.notFound("no endpoint \(bare)"))
            }
            var rest = Array(parts.dropFirst(2))
            var version: String? = nil
            if rest.count >= 2, rest[0] == "versions" {
                version = rest[1]
                rest.removeFirst(2)
            }
            switch rest {
            case []: (route, post) = (.modelMetadata(model: model, version: version), false)
            case ["ready"]: (route, post) = (.modelReady(model: model, version: version), false)
            case ["config"]: (route, post) = (.modelConfig(model: model, version: version), false)
            case ["infer"]: (route, post) = (.infer(model: model, version: version), true)
            default: return .failure(.notFound("no endpoint \(bare)"))
            }
        }
        let wanted = post ? "POST" : "GET"
        guard method == wanted || (!post && method == "HEAD") else {
            return .failure(ServingError(status: 405, "\(bare) takes \(wanted), not \(method)"))
        }
        return .success(route)
    }
}

extension String {
    /// The string with `%XX` escapes decoded, or nil when an escape is malformed or the result is not UTF-8.
    var removingPercentEncoding: String? {
        guard contains("%") else { return self }
        var bytes: [UInt8] = []
        var it = utf8.makeIterator()
        while let c = it.next() {
            guard c == UInt8(ascii: "%") else { bytes.append(c); continue }
            guard let h = it.next(), let l = it.next(), let hi = hexValue(h), let lo = hexValue(l) else { return nil }
            bytes.append(hi << 4 | lo)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
