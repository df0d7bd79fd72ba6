import BranchyServing
import Testing

/// The HTTP paths of the protocol, with and without a version; 404 and 405 otherwise.
@Suite struct RouteTests {
    func route(_ method: String, _ path: String) -> Route? { try? Route.match(method: method, path: path).get() }
    func status(_ method: String, _ path: String) -> Int? {
        if case .failure(let e) = Route.match(method: method, path: path) { return e.status }
        return nil
    }

    @Test func everyEndpoint() {
        #expect(route("GET", "/v2/health/live") == .live)
        #expect(route("GET", "/v2/health/ready") == .ready)
        #expect(route("HEAD", "/v2/health/ready") == .ready)
        #expect(route("GET", "/v2") == .serverMetadata)
        #expect(route("GET", "/v2/models/b-resnet3") == .modelMetadata(model: "b-resnet3", version: nil))
        #expect(route("GET", "/v2/models/b-resnet3/versions/1/ready") == .modelReady(model: "b-resnet3", version: "1"))
        #expect(route("GET", "/v2/models/b-resnet3/config") == .modelConfig(model: "b-resnet3", version: nil))
        #expect(route("POST", "/v2/models/b-resnet3/infer?x=1") == .infer(model: "b-resnet3", version: nil))
        #expect(route("POST", "/v2/models/my%20model/versions/2/infer") == .infer(model: "my model", version: "2"))
    }

    @Test func unknownPathsAndWrongMethods() {
        #expect(status("GET", "/") == 404)
        #expect(status("GET", "/v1/models/x") == 404)
        #expect(status("GET", "/v2/models") == 404)
        #expect(status("GET", "/v2/models/x/explain") == 404)
        #expect(status("GET", "/v2/models/%zz/infer") == 404)
        #expect(status("GET", "/v2/models/x/infer") == 405)
        #expect(status("POST", "/v2/health/live") == 405)
        #expect(status("DELETE", "/v2/models/x") == 405)
    }
}
