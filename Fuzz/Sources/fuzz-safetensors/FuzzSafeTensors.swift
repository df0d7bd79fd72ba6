import BranchyModel
import Foundation

/// The input is a safetensors file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? Data() : Data(bytes: data!, count: size)
    do {
        _ = try SafeTensors.decode(bytes)
    } catch {
        _ = "\(error)"
    }
    return 0
}
