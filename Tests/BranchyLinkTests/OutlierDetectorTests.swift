import NIOCore
import Testing
@testable import BranchyLink

@Suite struct OutlierDetectorTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func consecutiveFailuresEjectForTheBasePeriod() {
        var d = OutlierDetector()
        #expect(d.failed("a", at: t0) == nil)
        #expect(d.failed("a", at: t0) == nil)
        let ejection = d.failed("a", at: t0)
        #expect(ejection == .init(replica: "a", failures: 3, duration: .seconds(5)))
        #expect(d.isEjected("a", at: t0 + .seconds(4)))
        #expect(!d.isEjected("a", at: t0 + .seconds(5)))
        #expect(!d.isEjected("b", at: t0))
    }

    @Test func aSuccessResetsTheCount() {
        var d = OutlierDetector()
        _ = d.failed("a", at: t0)
        _ = d.failed("a", at: t0)
        d.succeeded("a", at: t0)
        #expect(d.failed("a", at: t0) == nil)
        #expect(d.failed("a", at: t0) == nil)
        #expect(!d.isEjected("a", at: t0))
    }

    @Test func repeatedEjectionsLastLongerUpToTheMaximum() {
        var d = OutlierDetector()
        var now = t0
        var durations: [TimeAmount] = []
        for _ in 0..<14 {
            var ejection: OutlierDetector.Ejection?
            while ejection == nil { ejection = d.failed("a", at: now) }
            durations.append(ejection!.duration)
            now = now + ejection!.duration
        }
        #expect(durations.prefix(4) == [.seconds(5), .seconds(10), .seconds(15), .seconds(20)])
        #expect(durations.last == .seconds(60))
    }

    @Test func failuresWhileEjectedDoNotExtendTheEjection() {
        var d = OutlierDetector()
        for _ in 0..<3 { _ = d.failed("a", at: t0) }
        for _ in 0..<10 { #expect(d.failed("a", at: t0 + .seconds(1)) == nil) }
        #expect(!d.isEjected("a", at: t0 + .seconds(5)))
    }

    @Test func aSuccessAfterTheEjectionForgetsIt() {
        var d = OutlierDetector()
        for _ in 0..<3 { _ = d.failed("a", at: t0) }
        d.succeeded("a", at: t0 + .seconds(6))
        var ejection: OutlierDetector.Ejection?
        while ejection == nil { ejection = d.failed("a", at: t0 + .seconds(7)) }
        #expect(ejection?.duration == .seconds(5))
    }

    @Test func onlyTheReplicasOwnFailuresCount() {
        #expect(!UpstreamFailure.overloaded(10).countsAgainstReplica)
        #expect(!UpstreamFailure.remote(.init(code: .shuttingDown, message: "")).countsAgainstReplica)
        #expect(UpstreamFailure.deadline(100).countsAgainstReplica)
        #expect(UpstreamFailure.invalidAnswer("x").countsAgainstReplica)
        #expect(UpstreamFailure.remote(.init(code: .internalError, message: "")).countsAgainstReplica)
    }
}
