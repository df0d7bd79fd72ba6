import BranchyData
import BranchyModel
import BranchyTensor
import BranchyTopology
import BranchyWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import BranchyNode

/// The repository root, found from this file's location.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command to completion; throws with its output when it exits non-zero.
@discardableResult
func runCommand(_ arguments: [String], in directory: URL? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestFailure("`\(arguments.joined(separator: " "))` exited with \(process.terminationStatus): \(output)")
    }
    return output
}

/// Files shared by every test of this target, made once per test process in a temporary folder:
/// an untrained (seeded) b-lenet3 model, mutual-TLS files for the nodes `device`, `device2`,
/// `edge` and `cloud`, a device certificate from an unrelated CA, an expired device
/// certificate from the right CA, and the Fashion-MNIST test set.
final class Fixture: @unchecked Sendable {
    let root: URL
    let modelDirectory: URL
    /// ca.pem and <node>.pem / <node>-key.pem for device, device2, edge, cloud.
    let certs: URL
    /// ca.pem, device.pem, device-key.pem of another CA.
    let otherCA: URL
    /// device.pem (expired in 2020, signed by `certs/ca.pem`) and device-key.pem.
    let expired: URL
    let data: IDXDataset

    private static let made: Result<Fixture, Error> = Result { try Fixture() }
    static func shared() throws -> Fixture { try made.get() }
    private nonisolated(unsafe) static var rootForCleanup: String?

    private init() throws {
        let fm = FileManager.default
        root = fm.temporaryDirectory.appendingPathComponent("branchy-node-tests-\(UUID().uuidString)", isDirectory: true)
        modelDirectory = root.appendingPathComponent("model")
        certs = root.appendingPathComponent("certs")
        otherCA = root.appendingPathComponent("other-ca")
        expired = root.appendingPathComponent("expired")
        for dir in [root, expired, root.appendingPathComponent("topologies")] {
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        Fixture.rootForCleanup = root.path
        atexit {
            if let path = Fixture.rootForCleanup { try? FileManager.default.removeItem(atPath: path) }
        }

        let network = try Network(spec: Architectures.bLeNet3)
        network.initialize(seed: 20_250_601)
        try Model.save(network, to: modelDirectory)

        let script = repositoryRoot.appendingPathComponent("scripts/gen-certs.sh").path
        try runCommand(["bash", script, "--nodes", "device,device2,edge,cloud", certs.path])
        try runCommand(["bash", script, "--nodes", "device", otherCA.path])
        try Fixture.makeExpiredCertificate(in: expired, ca: certs)

        data = try IDXDataset.load(directory: repositoryRoot.appendingPathComponent("data/fashion-mnist"), split: .test)
    }

    /// A certificate for `device` (same SANs as gen-certs.sh makes) valid only on 1 January 2020.
    /// `openssl x509 -days` cannot go negative and OpenSSL 3.0 has no `-not_after`, so `openssl ca`
    /// signs it with explicit start and end dates.
    private static func makeExpiredCertificate(in dir: URL, ca: URL) throws {
        try """
            [ca]
            default_ca = local
            [local]
            database = index.txt
            new_certs_dir = .
            serial = serial
            default_md = sha256
            policy = any
            unique_subject = no
            [any]
            commonName = supplied
            [v3_node]
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature
            extendedKeyUsage = serverAuth, clientAuth
            subjectAltName = DNS:device
            """.write(to: dir.appendingPathComponent("ca.cnf"), atomically: true, encoding: .utf8)
        try "".write(to: dir.appendingPathComponent("index.txt"), atomically: true, encoding: .utf8)
        try "01\n".write(to: dir.appendingPathComponent("serial"), atomically: true, encoding: .utf8)
        try runCommand(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "device-key.pem"], in: dir)
        try runCommand(["openssl", "req", "-new", "-key", "device-key.pem", "-subj", "/CN=device", "-out", "device.csr"], in: dir)
        try runCommand(["openssl", "ca", "-batch", "-config", "ca.cnf", "-cert", ca.appendingPathComponent("ca.pem").path,
                        "-keyfile", ca.appendingPathComponent("ca-key.pem").path, "-in", "device.csr",
                        "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
                        "-extensions", "v3_node", "-notext", "-out", "device.pem"], in: dir)
    }

    /// A fresh copy of the model's network.
    func network() throws -> Network { try Model.load(directory: modelDirectory).network }

    /// Sample `i` as the device's input, (1, 1, 28, 28).
    func input(_ i: Int) -> Tensor { Tensor(shape: [1, 1, data.rows, data.cols], data: Array(data.image(i))) }
}

/// A logger that prints nothing unless BRANCHY_TEST_LOG names a level (e.g. `debug`).
func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = ProcessInfo.processInfo.environment["BRANCHY_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}

/// Runs async work from synchronous code and blocks the calling thread until it is done.
func blockingAwait(_ body: @escaping @Sendable () async -> Void) {
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        await body()
        done.signal()
    }
    done.wait()
}

/// Polls `condition` every 10 ms until it holds or `seconds` pass; returns whether it held.
func eventually(within seconds: Double = 5, _ condition: () async -> Bool) async -> Bool {
    let until = Date().addingTimeInterval(seconds)
    while Date() < until {
        if await condition() { return true }
        try? await Task.sleep(nanoseconds: 10_000_000)
    }
    return await condition()
}

/// Ports nobody listens on right now: bound to port 0 together (so they differ), then released.
func freePorts(_ count: Int, group: EventLoopGroup) async throws -> [Int] {
    var channels: [Channel] = []
    for _ in 0..<count {
        channels.append(try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0).get())
    }
    let ports = channels.map { $0.localAddress!.port! }
    for c in channels { try await c.close().get() }
    return ports
}

/// Parent of the suites that open sockets: they run one test at a time, so that timing checks
/// (deadlines, reconnection) do not compete with dozens of other servers for two cores.
@Suite(.serialized) enum Sockets {}

/// What a test changes in the three-node topology (device → edge → cloud, int8 on both links).
struct ClusterOptions {
    var deviceThreshold: Float = 0
    var edgeThreshold: Float = 0
    var devicePolicy: FailurePolicy = .degrade
    var edgePolicy: FailurePolicy = .degrade
    var deviceDeadlineMs = 10_000
    /// The protocol version the device speaks to the edge (`protocol:`).
    var deviceProtocol = 2
    var edgeDeadlineMs = 10_000
    /// The edge's `limits:` entries, e.g. `["handshakeTimeoutMs": 500]`.
    var edgeLimits: [String: Int] = [:]
    /// The edge's certificate files, when not the edge's own (`tls:` entries `ca`, `cert`, `key`).
    var edgeTLS: [String: String] = [:]
    /// Edge and cloud bind 0.0.0.0 and are dialled at their `address:` (the edge as
    /// `localhost`, the cloud as `127.0.0.1`) instead of listening on 127.0.0.1.
    var bindEveryInterface = false
}

/// A topology file in the fixture folder with fresh ports, plus an event loop group and thread pool
/// for the nodes a test starts in this process. `shutdown()` stops everything it started.
final class Cluster: @unchecked Sendable {
    let fixture: Fixture
    let topologyURL: URL
    let edgePort: Int
    let cloudPort: Int
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let pool = NIOThreadPool(numberOfThreads: 2)
    private let started = NIOLockedValueBox<(servers: [InferenceServer], devices: [DeviceRunner], fakes: [FakeServer])>(([], [], []))

    private init(fixture: Fixture, options: ClusterOptions, ports: [Int]) throws {
        self.fixture = fixture
        edgePort = ports[0]
        cloudPort = ports[1]
        pool.start()
        let yaml = """
            model: \(fixture.modelDirectory.path)
            certs: \(fixture.certs.path)
            nodes:
              - name: device
                role: device
                stages: [device]
                thresholds: [\(options.deviceThreshold)]
                upstream: edge
                codec: int8
                onUpstreamFailure: \(options.devicePolicy.rawValue)
                deadlineMs: \(options.deviceDeadlineMs)
                protocol: \(options.deviceProtocol)
              - name: device2
                role: device
                stages: [device]
                thresholds: [\(options.deviceThreshold)]
                upstream: edge
                codec: int8
              - name: edge
                role: edge
                stages: [edge]
                thresholds: [\(options.edgeThreshold)]
                listen: \(options.bindEveryInterface ? "0.0.0.0" : "127.0.0.1"):\(edgePort)
            \(options.bindEveryInterface ? "    address: localhost:\(edgePort)" : "")
                upstream: cloud
                codec: int8
                onUpstreamFailure: \(options.edgePolicy.rawValue)
                deadlineMs: \(options.edgeDeadlineMs)
            \(Self.mapping("limits", options.edgeLimits.mapValues { "\($0)" }))
            \(Self.mapping("tls", options.edgeTLS))
              - name: cloud
                role: cloud
                stages: [cloud]
                listen: \(options.bindEveryInterface ? "0.0.0.0" : "127.0.0.1"):\(cloudPort)
            \(options.bindEveryInterface ? "    address: 127.0.0.1:\(cloudPort)" : "")

            """
        topologyURL = fixture.root.appendingPathComponent("topologies/\(UUID().uuidString).yaml")
        try yaml.write(to: topologyURL, atomically: true, encoding: .utf8)
    }

    /// `    key:\n      k: v` lines for a node entry, or an empty line when `entries` is empty.
    private static func mapping(_ key: String, _ entries: [String: String]) -> String {
        guard !entries.isEmpty else { return "" }
        return "    \(key):\n" + entries.sorted { $0.key < $1.key }.map { "      \($0.key): \($0.value)" }.joined(separator: "\n")
    }

    /// Runs `body` with a fresh cluster and always shuts it down afterwards.
    static func with<T>(_ options: ClusterOptions = ClusterOptions(), _ body: (Cluster) async throws -> T) async throws -> T {
        let fixture = try Fixture.shared()
        let probe = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let ports = try await freePorts(2, group: probe)
        try await probe.shutdownGracefully()
        let cluster = try Cluster(fixture: fixture, options: options, ports: ports)
        do {
            let value = try await body(cluster)
            await cluster.shutdown()
            return value
        } catch {
            await cluster.shutdown()
            throw error
        }
    }

    private let contexts = NIOLockedValueBox<[String: NodeContext]>([:])

    /// The node's context, loaded once per cluster (loading hashes the model).
    func context(_ name: String) throws -> NodeContext {
        if let known = contexts.withLockedValue({ $0[name] }) { return known }
        let loaded = try NodeContext.load(topologyPath: topologyURL.path, nodeName: name)
        contexts.withLockedValue { $0[name] = loaded }
        return loaded
    }

    /// Waits until a server's link to its upstream has completed its handshake.
    func waitUntilLinked(_ server: InferenceServer, seconds: Double = 5) async throws {
        let link = try #require(server.link)
        try await link.waitUntilReady(timeoutMillis: Int64(seconds * 1000)).get()
    }

    /// The number of handshakes a server's upstream link has completed.
    func upstreamConnections(of server: InferenceServer) async throws -> Int {
        let link = try #require(server.link)
        return try await link.loop.submit { link.connections }.get()
    }

    /// Starts the edge or cloud node in this process.
    @discardableResult
    func startServer(_ name: String) async throws -> InferenceServer {
        let server = try InferenceServer(context: try context(name), group: group, pool: pool, logger: testLogger(name))
        try await server.start()
        started.withLockedValue { $0.servers.append(server) }
        return server
    }

    /// A raw wire client connected to the edge with the device's certificate, after a hello
    /// the edge acknowledged.
    func helloAsDevice(to edge: InferenceServer, certs: URL) async throws -> WireClient {
        let client = try await WireClient.connect(port: edgePort, group: group, identity: .node("device", in: certs))
        let ack = await client.hello(Hello(role: .device, nodeName: "device", fingerprint: edge.context.fingerprint))
        guard case .helloAck = ack?.message else {
            Issue.record("no helloAck: \(String(describing: ack))")
            throw CancellationError()
        }
        return client
    }

    /// Drains a server (stops listening, answers what is in flight, closes).
    func stop(_ server: InferenceServer, graceSeconds: Double) async throws {
        await server.drain(graceSeconds: graceSeconds)
    }

    /// A device runner, connected to the edge (or not, when nothing listens there).
    func startDevice(_ name: String = "device", connectTimeout: Double = 5) async throws -> DeviceRunner {
        let device = try DeviceRunner(context: try context(name), group: group, logger: testLogger(name))
        started.withLockedValue { $0.devices.append(device) }
        await device.start(connectTimeout: connectTimeout)
        return device
    }

    /// Starts a hand-written TLS server in place of the node `name`, with that node's certificate.
    @discardableResult
    func startFake(as name: String, at listen: Endpoint? = nil, respond: @escaping @Sendable (Frame) -> [Frame]) async throws -> FakeServer {
        let ctx = try context(name)
        let fake = try await FakeServer.start(context: ctx, group: group, listen: listen, respond: respond)
        started.withLockedValue { $0.fakes.append(fake) }
        return fake
    }

    func shutdown() async {
        let (servers, devices, fakes) = started.withLockedValue { ($0.servers, $0.devices, $0.fakes) }
        for d in devices { await d.stop() }
        for s in servers { await s.drain(graceSeconds: 1) }
        for f in fakes { try? await f.channel.close().get() }
        try? await pool.shutdownGracefully()
        try? await group.shutdownGracefully()
    }
}

/// Which exit answers a sample and what it says, when the network runs in one process the way the
/// tiers run it: batch of one, features through `codec` between stages.
struct ExpectedAnswer {
    var exit: Int
    var output: ExitOutput
    /// Every exit computed on the way (the last one is `output`).
    var outputs: [ExitOutput]
}

func inProcessAnswer(network: Network, policy: ExitPolicy, codec: FeatureCodecKind, input: Tensor) -> ExpectedAnswer {
    let exits = network.stages.count
    var x = input
    var outputs: [ExitOutput] = []
    for i in 0..<exits {
        if i > 0 {
            x = Tensor(shape: x.shape, data: codec.roundTrip(Tensor(shape: Array(x.shape.dropFirst()), data: x.data)).data)
        }
        x = network.trunk(i, x)
        let out = network.classify(exit: i, features: x)[0]
        outputs.append(out)
        if policy.exits(at: i, of: exits, entropy: out.entropy) { return ExpectedAnswer(exit: i, output: out, outputs: outputs) }
    }
    fatalError("the last exit always answers")
}

/// Thresholds that split the first `count` samples roughly in half at the device exit and the rest in
/// half again at the edge exit, so that every exit answers some samples.
func splittingThresholds(network: Network, fixture: Fixture, count: Int) -> (device: Float, edge: Float) {
    let never = ExitPolicy(thresholds: [0, 0])
    let answers = (0..<count).map { inProcessAnswer(network: network, policy: never, codec: .int8, input: fixture.input($0)) }
    let deviceEntropies = answers.map { $0.outputs[0].entropy }.sorted()
    let deviceThreshold = deviceEntropies[count / 2]
    let edgeEntropies = answers.filter { $0.outputs[0].entropy >= deviceThreshold }.map { $0.outputs[1].entropy }.sorted()
    return (deviceThreshold, edgeEntropies[edgeEntropies.count / 2])
}

/// The features the device sends for sample `i`: its trunk's output, int8-encoded, as an infer request for stage 1.
func deviceRequest(network: Network, fixture: Fixture, sample i: Int) -> InferRequest {
    let features = network.trunk(0, fixture.input(i))
    return InferRequest(sampleID: UInt64(i), stageIndex: 1,
                        tensor: Tensor(shape: Array(features.shape.dropFirst()), data: features.data), codec: .int8)
}
