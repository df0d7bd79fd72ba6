import BranchyModel
import Testing
@testable import BranchyTraining

@Suite struct SweepTests {
    @Test func runCoversEveryCombination() {
        let trace = EvalReportTests.trace
        let grid: [Float] = [0.05, 0.3, 0.6, 5]
        let points = Sweep.run(trace: trace, grid: grid)
        #expect(points.count == 16) // grid^(exits − 1)
        var expected: [[Float]] = []
        for a in grid { for b in grid { expected.append([a, b]) } }
        #expect(points.map(\.thresholds) == expected)
        for p in points {
            let r = EvalReport(trace: trace, policy: ExitPolicy(thresholds: p.thresholds), codec: "")
            #expect(p.accuracy == r.accuracy)
            #expect(p.fractions == r.exits.map(\.fraction))
            #expect(abs(p.fractions.reduce(0, +) - 1) < 1e-12)
        }
    }

    @Test func runWithOneOrTwoExits() {
        let two = TrainingFixture.trace(names: ["a", "b"], labels: [0, 1], [[(0, 0.1), (0, 0.9)], [(1, 1), (1, 1)]])
        #expect(Sweep.run(trace: two, grid: [0.5, 1, 2]).map(\.thresholds) == [[0.5], [1], [2]])
        let one = TrainingFixture.trace(names: ["only"], labels: [0, 1], [[(0, 0.1), (0, 0.9)]])
        let single = Sweep.run(trace: one, grid: [0.5, 1])
        #expect(single.map(\.thresholds) == [[]])
        #expect(single[0].accuracy == 0.5)
        let three = EvalReportTests.trace
        #expect(Sweep.run(trace: three, grid: Sweep.paperGrid).count == Sweep.paperGrid.count * Sweep.paperGrid.count)
    }

    func point(_ t: [Float], _ accuracy: Double, _ fractions: [Double]) -> Sweep.Point {
        Sweep.Point(thresholds: t, accuracy: accuracy, fractions: fractions)
    }

    @Test func chooseRespectsTheTolerance() {
        let points = [
            point([0.1, 0.1], 0.900, [0.10, 0.10, 0.80]),
            point([0.5, 0.1], 0.895, [0.50, 0.10, 0.40]),
            point([1.0, 0.1], 0.870, [0.80, 0.10, 0.10]),
            point([0.1, 1.0], 0.8995, [0.10, 0.70, 0.20]), // earliness 0.9, below [0.5, 0.1]'s 1.1
        ]
        // The last exit alone reaches 0.9.
        #expect(Sweep.choose(points, finalOnly: 0.9, tolerance: 0.01)?.thresholds == [0.5, 0.1])
        #expect(Sweep.choose(points, finalOnly: 0.9, tolerance: 0.04)?.thresholds == [1.0, 0.1])
        #expect(Sweep.choose(points, finalOnly: 0.9, tolerance: 0.001)?.thresholds == [0.1, 1.0])
        #expect(Sweep.choose(points, finalOnly: 0.9, tolerance: 0)?.thresholds == [0.1, 0.1])
        #expect(Sweep.choose(points, finalOnly: 0.95, tolerance: 0.01) == nil)
        #expect(Sweep.choose([], finalOnly: 0.9, tolerance: 1) == nil)
    }

    @Test func chooseOnARealSweep() throws {
        let trace = EvalReportTests.trace
        let points = Sweep.run(trace: trace, grid: Sweep.fineGrid)
        let finalOnly = 5.0 / 6
        let chosen = try #require(Sweep.choose(points, finalOnly: finalOnly, tolerance: 0))
        #expect(chosen.accuracy >= finalOnly)
        // Any point sending more samples out earlier loses accuracy.
        let earliness = { (p: Sweep.Point) in 2 * p.fractions[0] + p.fractions[1] }
        #expect(points.filter { earliness($0) > earliness(chosen) }.allSatisfy { $0.accuracy < finalOnly })
    }

    @Test func frontierKeepsOnlyUnbeatenPoints() {
        let points = [
            point([1], 0.80, [0.9, 0.1]),
            point([2], 0.85, [0.9, 0.1]), // same earliness, more accurate: replaces the one above
            point([3], 0.84, [0.5, 0.5]), // later and less accurate: beaten
            point([4], 0.90, [0.2, 0.8]),
            point([5], 0.95, [0.0, 1.0]),
        ]
        #expect(Sweep.frontier(points).map(\.thresholds) == [[2], [4], [5]])
    }
}
