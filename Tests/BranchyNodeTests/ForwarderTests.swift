import BranchyLink
import Testing
@testable import BranchyNode

@Suite struct ForwarderTests {
    /// The device's view of the entropies a sample passed: its own by stage, the answer's ending
    /// just before the answering exit, nil where a version 1 link left a gap.
    @Test func passedEntropiesByExit() {
        // Device on stage 0; the cloud answered at exit 2 after the edge's exit 1 (protocol v2).
        #expect(DeviceRunner.entropies(before: 2, own: [1.5], at: [0], upstream: [1.5, 0.75]) == [1.5, 0.75])
        // The same behind a version 1 link: the upstream sent none.
        #expect(DeviceRunner.entropies(before: 2, own: [1.5], at: [0], upstream: []) == [1.5, nil])
        // A raw-offload device (no stage) behind a cloud that ran stages 0 and 1 and answered at 1.
        #expect(DeviceRunner.entropies(before: 1, own: [], at: [], upstream: [0.5]) == [0.5])
        // Left at the device's second exit, or degraded to its own last exit: only the exits before it.
        #expect(DeviceRunner.entropies(before: 1, own: [0.9, 0.2], at: [0, 1], upstream: []) == [0.9])
        #expect(DeviceRunner.entropies(before: 0, own: [0.9], at: [0], upstream: []) == [])
    }

    /// Four fifths of what the caller left, less what was spent here; none when the caller gave none.
    @Test func upstreamDeadlineLeavesAFifthForTheWayBack() {
        let ms: UInt64 = 1_000_000
        #expect(Forwarder.upstreamDeadline(callerMillis: 0, arrival: 0, now: 50 * ms) == 0)
        #expect(Forwarder.upstreamDeadline(callerMillis: 100, arrival: 0, now: 0) == 80)
        #expect(Forwarder.upstreamDeadline(callerMillis: 100, arrival: 10 * ms, now: 30 * ms) == 64)
        // Spent it all (or more): still 1 ms, so that the next hop refuses it rather than waits forever.
        #expect(Forwarder.upstreamDeadline(callerMillis: 100, arrival: 0, now: 500 * ms) == 1)
    }

    @Test func linkDeadlineIsTheTighterOfLinkAndRequest() {
        #expect(linkDeadline(linkMillis: 2_000, requestMillis: 0) == 2_000)
        #expect(linkDeadline(linkMillis: 2_000, requestMillis: 300) == 300)
        #expect(linkDeadline(linkMillis: 200, requestMillis: 300) == 200)
    }
}
