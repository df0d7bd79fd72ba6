import Foundation
import Testing
@testable import BranchyReport

@Suite struct HTMLReportPartsTests {
    @Test func escape() {
        #expect(HTMLText.escape(#"a<b>&"c"'d"#) == "a&lt;b&gt;&amp;&quot;c&quot;&#39;d")
        #expect(HTMLText.escape("ünï\u{1}") == "ünï\u{FFFD}")
    }

    @Test func coordinatesAreAlwaysFinite() {
        #expect(HTMLText.coordinate(.nan) == "0")
        #expect(HTMLText.coordinate(.infinity) == "0")
        #expect(HTMLText.coordinate(12.04) == "12")
        #expect(HTMLText.coordinate(12.06) == "12.1")
        #expect(HTMLText.coordinate(-3.25) == "-3.2" || HTMLText.coordinate(-3.25) == "-3.3")
    }

    @Test func numberFormats() {
        #expect(HTMLText.grouped(0) == "0")
        #expect(HTMLText.grouped(10_000) == "10,000")
        #expect(HTMLText.grouped(-1_234_567) == "-1,234,567")
        #expect(HTMLText.compact(0.25) == "0.25")
        #expect(HTMLText.compact(1500) == "1,500")
        #expect(HTMLText.compact(0.5) == "0.5")
        #expect(HTMLText.percent(0.9123, 2) == "91.23%")
        #expect(HTMLText.percent(.nan) == "–")
        #expect(HTMLText.fixed(-0.0001, 1) == "0.0")
    }

    @Test(arguments: [[], [0.0], [5.0, 5.0], [.nan, .infinity], [-3.0, 7.0], [0.001, 1e6]])
    func scalesGiveFinitePositions(values: [Double]) {
        for s in [ChartScale.linear(covering: values, from: 300, to: 40), ChartScale.linear(covering: values, includeZero: false, from: 300, to: 40),
                  ChartScale.log(covering: values, from: 70, to: 650)] {
            #expect(s.upper > s.lower)
            #expect(!s.ticks.isEmpty)
            for v in values + s.ticks + [0, -1, .nan] {
                let p = s(v)
                #expect(p.isFinite && p >= min(s.from, s.to) && p <= max(s.from, s.to))
            }
        }
    }

    @Test func linearTicksAreRound() {
        let s = ChartScale.linear(covering: [0, 6850], from: 0, to: 100)
        #expect(s.lower == 0 && s.upper == 8000)
        #expect(s.ticks == [0, 2000, 4000, 6000, 8000])
    }

    @Test func cdfEndsAtOne() {
        let sorted = (1...1000).map(Double.init)
        let c = HTMLReport.cdf(sorted, points: 100)
        #expect(c.count == 101)
        #expect(c.first! == (1, 0.001))
        #expect(c.last! == (1000, 1))
        #expect(HTMLReport.cdf([7], points: 100).map(\.share) == [1])
        #expect(HTMLReport.quantile(sorted, 0.99) == 990)
    }
}

@Suite struct HTMLReportCalibrationTests {
    func write(_ json: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("calibration-\(UUID().uuidString).json")
        try Data(json.utf8).write(to: url)
        return url
    }

    @Test func readsTheDocumentedFormat() throws {
        let url = try write(#"""
            {"goal": "max-accuracy-drop 0.5",
             "points": [{"thresholds": [0.6, 0.5], "accuracy": 0.905, "bytesPerSample": 41.2, "deviceFraction": 0.86},
                        {"thresholds": [0.9, 0.9], "accuracy": 0.87, "bytesPerSample": 12}],
             "chosen": 0}
            """#)
        defer { try? FileManager.default.removeItem(at: url) }
        let c = try Calibration.load(contentsOf: url)
        #expect(c.goal == "max-accuracy-drop 0.5")
        #expect(c.points.count == 2)
        #expect(c.chosenPoint?.thresholds == [0.6, 0.5])
        #expect(c.points[1].deviceFraction == nil)
    }

    @Test(arguments: [
        (#"{"goal": "g", "points": [], "chosen": 0}"#, "chosen is 0 but there are 0 points"),
        (#"{"goal": "g", "points": [{"thresholds": [], "accuracy": 91, "bytesPerSample": 1}]}"#, "points[0].accuracy is 91.0"),
        (#"{"goal": "g", "points": [{"thresholds": [], "accuracy": 0.9, "bytesPerSample": -1}]}"#, "points[0].bytesPerSample is -1.0"),
        (#"{"points": []}"#, "not a calibration file"),
    ])
    func rejectsBadFilesNamingThem(json: String, message: String) throws {
        let url = try write(json)
        defer { try? FileManager.default.removeItem(at: url) }
        let error = #expect(throws: ReportError.self) { try Calibration.load(contentsOf: url) }
        #expect(error?.description.contains(url.path) == true)
        #expect(error?.description.contains(message) == true, "\(error?.description ?? "")")
    }

    @Test func roundTrips() throws {
        let c = HTMLReportFixtures.calibration
        #expect(try JSONDecoder().decode(Calibration.self, from: JSONEncoder().encode(c)) == c)
    }
}
