import BranchyLink
@testable import BranchyNode
import BranchyObservability
import BranchyReport
import BranchyTransport
import BranchyWire
import Foundation
import Logging
import NIOCore
import Testing

/// What a node does with numbers a peer made up: results naming exits or classes the model does
/// not have, byte counts that would overflow a report's sums.
@Suite struct UntrustedPeerUnitTests {
    static let exits = ["device-exit", "edge-exit", "cloud-exit"]

    static func result(exit: UInt8, name: String? = nil, predicted: UInt16 = 3) -> InferResult {
        InferResult(exitIndex: exit, exitName: name ?? (Int(exit) < exits.count ? exits[Int(exit)] : "x"), nodeName: "cloud",
                    predictedClass: predicted, confidence: 0.9, entropy: 0.1)
    }

    static func problem(_ r: InferResult, first: Int = 1) -> String? {
        UpstreamConnectionStateMachine.problem(with: r, exitNames: exits, classCount: 10, firstUpstreamExit: first)
    }

    @Test func answersFromUpstreamExitsAreAccepted() {
        #expect(Self.problem(Self.result(exit: 1)) == nil)
        #expect(Self.problem(Self.result(exit: 2, predicted: 9)) == nil)
    }

    @Test func impossibleAnswersNameTheField() {
        #expect(Self.problem(Self.result(exit: 255))?.contains("exitIndex is 255") == true)
        #expect(Self.problem(Self.result(exit: 0))?.contains("exitIndex is 0") == true)  // the device's own exit
        #expect(Self.problem(Self.result(exit: 2, name: "edge-exit"))?.contains("exitName") == true)
        #expect(Self.problem(Self.result(exit: 2, predicted: 10))?.contains("predictedClass is 10") == true)
        #expect(Self.problem(Self.result(exit: 2, predicted: 65535))?.contains("expected 0...9") == true)
    }

    @Test func reportSumsSaturateInsteadOfTrapping() {
        let huge = HopCost(link: "device->edge", requestFrameBytes: .max, responseFrameBytes: .max, requestTLSBytes: .max, responseTLSBytes: .max)
        let records = (0..<3).map { i in
            SampleRecord(sample: i, label: 1, status: .answered, reason: "", exit: 1, exitName: "edge-exit", node: "edge", predicted: 1,
                         entropy: 0.1, latencySeconds: 0.001, hops: [huge, huge])
        }
        var report = RunReport(records: records, exitNames: Self.exits, inputShape: [1, 28, 28], duration: 1, handshakeBytes: 0,
                               thresholds: [0.5, 0.5], codec: "int8", fingerprint: "f", topology: "t", device: "device")
        #expect(report.totalWireBytes == .max)
        #expect(report.links[0].requestTLSBytes == .max)
        report.setLinkTotals([LinkTotals(link: "a", connections: 1, handshakeBytes: .max, bytesSent: 0, bytesReceived: 0),
                              LinkTotals(link: "b", connections: 1, handshakeBytes: .max, bytesSent: 0, bytesReceived: 0)])
        #expect(report.handshakeBytesAllLinks == .max)
        #expect(report.bytesPerSampleWithHandshakes.isFinite)
        #expect((try? report.json()) != nil)
    }

    @Test func saturatingAddition() {
        #expect(UInt64(3).adding(saturating: 4) == 7)
        #expect(UInt64.max.adding(saturating: 1) == .max)
        var v = UInt64.max - 1
        v.add(saturating: 5)
        #expect(v == .max)
    }

    @Test func jsonLogLinesEscapeWhatPeersSend() {
        #expect(JSONLogHandler.quoted("plain") == "\"plain\"")
        #expect(JSONLogHandler.quoted("a\"b\\c") == "\"a\\\"b\\\\c\"")
        #expect(JSONLogHandler.quoted("line\nforged {\"level\":\"info\"}") == "\"line\\nforged {\\\"level\\\":\\\"info\\\"}\"")
        #expect(JSONLogHandler.quoted("\u{1B}[31m\u{2028}") == "\"\\u001b[31m\\u2028\"")
        let line = JSONLogHandler.quoted("é ✓")
        #expect((try? JSONSerialization.jsonObject(with: Data("[\(line)]".utf8))) != nil)
        #expect(JSONLogHandler.timestamp().hasSuffix("Z") && JSONLogHandler.timestamp().count == 24)
    }

    @Test func oneAcceptFailureEpisodeMakesTheNodeNotReady() {
        let backoff = AcceptBackoff(logger: Logger(label: "test"))
        #expect(backoff.notReadyBecause == nil)
        var shed = 0
        let emfile = IOError(errnoCode: EMFILE, reason: "accept")
        #expect(backoff.failed(emfile, listener: "the metrics port") { shed += 1; return 0 } == .milliseconds(250))
        #expect(backoff.failed(emfile, listener: "the TLS port") { shed += 1; return 3 } == .milliseconds(5))
        #expect(shed == 2)
        let why = backoff.notReadyBecause
        #expect(why?.contains("the TLS port") == true && why?.contains("2 failed accepts") == true, "\(why ?? "nil")")
        // Not a descriptor shortage: nothing to shed.
        #expect(backoff.failed(IOError(errnoCode: ECONNABORTED, reason: "accept"), listener: "x") { shed += 1; return 9 } == .milliseconds(250))
        #expect(shed == 2)
    }
}
