import Foundation
import Testing
@testable import BranchyReport

/// Fixtures and attribute checks shared by the HTML report tests.
enum HTMLReportFixtures {
    static let calibration = Calibration(goal: "max-accuracy-drop 0.5", points: [
        .init(thresholds: [0.2, 0.2], accuracy: 0.91, bytesPerSample: 300, deviceFraction: 0.4),
        .init(thresholds: [0.6, 0.5], accuracy: 0.905, bytesPerSample: 41.2, deviceFraction: 0.86),
        .init(thresholds: [0.9, 0.9], accuracy: 0.87, bytesPerSample: 12, deviceFraction: 0.97),
        .init(thresholds: [0.7, 0.1], accuracy: 0.88, bytesPerSample: 200, deviceFraction: 0.9),
    ], chosen: 1)

    static func input(calibration: Calibration? = calibration) -> HTMLReport.Input {
        HTMLReport.Input(report: RunReportTests.report(), records: RunReportTests.records, calibration: calibration)
    }

    static func html(_ input: HTMLReport.Input = input()) -> String { HTMLReport(input: input).render() }

    static func count(_ needle: String, in s: String) -> Int { s.components(separatedBy: needle).count - 1 }

    /// Every numeric SVG attribute (positions, sizes, polyline points) parses as a finite number.
    static func badNumericAttributes(_ html: String) -> [String] {
        var bad: [String] = []
        let numeric = try! NSRegularExpression(pattern: #" (x|y|x1|y1|x2|y2|cx|cy|r|width|height)="([^"]*)""#)
        let points = try! NSRegularExpression(pattern: #" points="([^"]*)""#)
        let ns = html as NSString
        for m in numeric.matches(in: html, range: NSRange(location: 0, length: ns.length)) {
            let v = ns.substring(with: m.range(at: 2))
            if !(Double(v)?.isFinite ?? false) { bad.append(ns.substring(with: m.range)) }
        }
        for m in points.matches(in: html, range: NSRange(location: 0, length: ns.length)) {
            let v = ns.substring(with: m.range(at: 1))
            let numbers = v.split(whereSeparator: { $0 == " " || $0 == "," })
            if numbers.isEmpty || !numbers.allSatisfy({ Double($0)?.isFinite ?? false }) { bad.append(ns.substring(with: m.range)) }
        }
        return bad
    }
}

@Suite struct HTMLReportTests {
    typealias F = HTMLReportFixtures

    @Test func oneSVGPerChart() {
        let html = F.html()
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(F.count("<svg", in: html) == 4)
        for chart in ["exits", "bytes", "frontier", "latency"] {
            #expect(F.count("data-chart=\"\(chart)\"", in: html) == 1, "chart \(chart)")
        }
        #expect(F.badNumericAttributes(html).isEmpty)
    }

    @Test func selfContained() {
        let html = F.html()
        #expect(!html.contains("<script"))
        #expect(!html.contains("<link"))
        #expect(!html.contains("src="))
        #expect(!html.contains("http://") || html.components(separatedBy: "http://").dropFirst().allSatisfy { $0.hasPrefix("www.w3.org/2000/svg") })
        #expect(!html.contains("https://"))
    }

    @Test func keyFigures() {
        let html = F.html()
        let r = RunReportTests.report()
        #expect(html.contains(">7<"))  // samples
        #expect(html.contains("5 answered, 1 degraded, 1 failed"))
        #expect(html.contains(HTMLText.percent(r.accuracy, 2)))
        #expect(html.contains(HTMLText.fixed(r.bytesPerSample, 1)))
        #expect(html.contains(HTMLText.fixed(r.rawOffloadBytesPerSample / r.bytesPerSample, 1) + "×"))
        #expect(html.contains("2.00 s"))
    }

    @Test func aSampleBarAndAnAccuracyDotPerExit() {
        let html = F.html()
        #expect(F.count("class=\"mark bar-samples\"", in: html) == 3)
        #expect(F.count("class=\"mark accuracy\"", in: html) == 3)
        for name in RunReportTests.exitNames {
            #expect(html.contains("class=\"mark bar-samples\" x=") && html.contains("data-exit=\"\(name)\" data-samples=\"2\""))
        }
    }

    @Test func bytesStackedByLinkForEachExitAndOverall() {
        let html = F.html()
        // edge-exit crosses one link, cloud-exit two, and all samples together two; the device's exit none.
        #expect(F.count("class=\"mark bar-bytes\"", in: html) == 1 + 2 + 2)
        #expect(html.contains("data-bar=\"all samples\" data-link=\"edge-&gt;cloud\""))
        let input = F.input()
        let r = RunReportTests.report()
        for (e, re) in zip(input.exits, r.exits) { #expect(abs(e.bytesPerSample - re.bytesPerSample) < 1e-9) }
        #expect(html.contains(">" + HTMLText.compact(r.exits[2].bytesPerSample) + " B<"))
    }

    @Test func latencyCurvePerExitWithSamples() {
        let html = F.html()
        #expect(F.count("class=\"mark cdf\"", in: html) == 3)
        let input = F.input()
        #expect(input.exits.map(\.latenciesMs) == [[1, 2], [3, 6], [4, 5]])
    }

    @Test func frontierMarksTheChosenPoint() {
        let html = F.html()
        #expect(F.count("class=\"mark chosen\"", in: html) == 1)
        #expect(html.contains("class=\"mark chosen\"") && html.contains("data-index=\"1\"><title>chosen: thresholds [0.6, 0.5]"))
        #expect(F.count("class=\"mark point", in: html) == 4)
        #expect(F.count("class=\"mark run\"", in: html) == 1)
        // Point 3 (0.88 at 200 B) is beaten by point 1 (0.905 at 41.2 B).
        #expect(HTMLReport.frontier(F.calibration.points) == [2, 1, 0])
        #expect(html.contains("Goal: max-accuracy-drop 0.5."))
    }

    @Test func withoutCalibrationTheSectionSaysSo() {
        let html = F.html(F.input(calibration: nil))
        #expect(F.count("<svg", in: html) == 3)
        #expect(!html.contains("data-chart=\"frontier\""))
        #expect(html.contains("No calibration data"))
        #expect(F.badNumericAttributes(html).isEmpty)
    }

    @Test func calibrationWithoutPointsOrChoice() {
        let html = F.html(F.input(calibration: Calibration(goal: "none", points: [], chosen: nil)))
        #expect(html.contains("data-chart=\"frontier\""))
        #expect(html.contains("the calibration file has no points"))
        #expect(!html.contains("class=\"mark chosen\""))
        #expect(F.badNumericAttributes(html).isEmpty)
    }

    @Test func escapesEveryName() {
        let evil = "<script>alert(\"x\")</script>&'"
        var input = F.input()
        input.title = evil
        input.details = [.init(evil, evil)]
        input.exits[0].name = evil
        input.exits[1].links[0].link = evil
        input.links[0].name = evil
        input.calibration?.goal = evil
        let html = F.html(input)
        #expect(!html.contains("<script"))
        #expect(!html.contains("alert(\"x\")"))
        #expect(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"))
        #expect(F.count("<svg", in: html) == 4)
    }

    @Test func anExitWithoutSamples() {
        let records = RunReportTests.records.filter { $0.exit != 1 }
        let input = HTMLReport.Input(report: RunReportTests.report(records), records: records, calibration: F.calibration)
        #expect(input.exits[1].samples == 0)
        let html = F.html(input)
        #expect(F.count("class=\"mark bar-samples\"", in: html) == 3)
        #expect(F.count("class=\"mark accuracy\"", in: html) == 2)
        #expect(F.count("class=\"mark cdf\"", in: html) == 2)
        #expect(html.contains("edge-exit (no samples)"))
        #expect(F.badNumericAttributes(html).isEmpty)
        #expect(!html.lowercased().contains("nan"))
    }

    @Test func noSamplesAtAll() {
        let input = HTMLReport.Input(report: RunReportTests.report([]), records: [], calibration: nil)
        let html = F.html(input)
        #expect(F.count("<svg", in: html) == 3)
        #expect(F.count("class=\"mark bar-samples\"", in: html) == 3)
        #expect(html.contains("no answered samples"))
        #expect(html.contains("all local"))  // no bytes: no savings factor to divide
        #expect(F.badNumericAttributes(html).isEmpty)
        #expect(!html.lowercased().contains("nan"))
    }

    @Test func noExitsAndNonFiniteFigures() {
        let input = HTMLReport.Input(title: "empty", samples: 0, answered: 0, degraded: 0, failed: 0, accuracy: .nan,
                                     bytesPerSample: .infinity, rawOffloadBytesPerSample: .nan, durationSeconds: 0,
                                     latencyP50Ms: .nan, latencyP99Ms: 0, exits: [], links: [],
                                     calibration: Calibration(goal: "g", points: [.init(thresholds: [], accuracy: 1, bytesPerSample: 0)], chosen: 0))
        let html = F.html(input)
        #expect(F.count("<svg", in: html) == 4)
        #expect(F.badNumericAttributes(html).isEmpty)
    }

    @Test func deterministic() {
        #expect(F.html() == F.html())
    }

    @Test func writesTheFile() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("branchy-html-\(UUID().uuidString).html")
        defer { try? FileManager.default.removeItem(at: url) }
        try HTMLReport(input: F.input()).write(to: url)
        #expect(try String(contentsOf: url, encoding: .utf8) == F.html())
    }
}
