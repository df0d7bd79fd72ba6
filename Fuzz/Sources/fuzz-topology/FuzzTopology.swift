import BranchyTopology
import Foundation

/// The input is a topology file's text, parsed and validated without and with the shipped
/// model's stage order (TLS files are not looked up).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTopology(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    // Topology.load reads the file as UTF-8 and rejects anything else.
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self) else { return 0 }
    for stageOrder in [nil, ["device", "edge", "cloud"]] {
        do {
            _ = try Topology.parse(yaml: text, fileURL: fileURL, stageOrder: stageOrder, checkFiles: false)
        } catch {
            _ = "\(error)"
        }
    }
    return 0
}

let fileURL = URL(fileURLWithPath: "/nonexistent/topology/fuzz.yaml")
