import BranchyLink
import Testing
@testable import BranchyNode

@Suite struct ForwarderTests {
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
