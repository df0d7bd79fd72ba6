/// A report or calibration file could not be read or written: the description says which file and what was wrong.
public struct ReportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
