/// The deadline a request gets on a link, in ms: the tighter of the link's own and what the
/// request still has (`requestMillis` 0: no limit of its own). It runs from when the request is
/// handed to the link, queueing included; a retry on another replica gets what is left of it.
public func linkDeadline(linkMillis: Int, requestMillis: UInt32) -> Int {
    requestMillis > 0 ? min(linkMillis, Int(requestMillis)) : linkMillis
}
