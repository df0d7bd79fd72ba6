import BranchyWire
import Foundation
import Testing
@testable import BranchyReport

@Suite struct HopTimingTests {
    static func hop(_ link: String, rt: UInt64, held: UInt64) -> HopCost {
        HopCost(link: link, requestFrameBytes: 400, responseFrameBytes: 40, requestTLSBytes: 422, responseTLSBytes: 62,
                roundTripMicros: rt, upstreamMicros: held)
    }

    /// Per link, in the order links first appear: the round trip, the hold and their difference
    /// taken request by request (so the link's quantiles are not the difference of the others').
    @Test func splitsEachLinksRoundTripRequestByRequest() {
        let records = [
            RunReportTests.record(0, label: 1, exit: 0, node: "device", predicted: 1, ms: 0.1),
            RunReportTests.record(1, label: 1, exit: 1, node: "edge", predicted: 1, ms: 1, hops: [Self.hop("device->edge", rt: 300, held: 100)]),
            RunReportTests.record(2, label: 1, exit: 2, node: "cloud", predicted: 1, ms: 2,
                                  hops: [Self.hop("device->edge", rt: 900, held: 800), Self.hop("edge->cloud", rt: 500, held: 200)]),
            RunReportTests.record(3, label: 1, exit: 1, node: "edge", predicted: 1, ms: 1, hops: [Self.hop("device->edge", rt: 400, held: 150)]),
        ]
        let t = HopTiming.of(records)
        #expect(t.map(\.link) == ["device->edge", "edge->cloud"])
        #expect(t[0].requests == 3)
        #expect(t[0].roundTripMs.p50 == 0.4 && t[0].roundTripMs.p99 == 0.9)
        #expect(t[0].heldMs.p50 == 0.15)
        // Link costs 0.2, 0.1, 0.25 ms: the median is 0.2 (rt median − held median would say 0.25).
        #expect(abs(t[0].linkMs.p50 - 0.2) < 1e-12 && abs(t[0].linkMs.p99 - 0.25) < 1e-12)
        #expect(abs(t[0].linkMs.mean - 0.55 / 3) < 1e-12)
        #expect(t[1].requests == 1 && abs(t[1].linkMs.p50 - 0.3) < 1e-12)
    }

    /// Hops without timings (a run that did not ask) give no figures, and the report says so with nil.
    @Test func withoutTimingsThereAreNone() throws {
        #expect(HopTiming.of(RunReportTests.records).isEmpty)
        let report = RunReportTests.report()
        #expect(report.hopTimings == nil)
        #expect(!report.table.contains("timings over"))
    }

    /// The report carries the timings, prints them, and reads them back from its JSON.
    @Test func theReportCarriesThem() throws {
        var records = RunReportTests.records
        records[2].hops = [Self.hop("device->edge", rt: 350, held: 120)]
        records[2].computeNanos = 20_000
        let report = RunReportTests.report(records)
        #expect(report.hopTimings?.first?.link == "device->edge")
        #expect(report.table.contains("device->edge timings over 1 requests: round trip p50 0.350 ms"))
        #expect(report.deviceComputeMs.map { $0.p99 == 0.02 } == true)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("hop-timings-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try report.json().write(to: url)
        #expect(try RunReport.load(url).hopTimings == report.hopTimings)
    }

    @Test func quantilesOfNothingAreZero() {
        let q = RunReport.Latency([])
        #expect(q.p50 == 0 && q.p99 == 0 && q.mean == 0)
        #expect(RunReport.Latency([3, 1, 2]).p50 == 2)
    }
}
