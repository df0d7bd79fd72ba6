extension SafeTensors {
    /// Element types this reader converts to `Float`.
    enum DType: String, CaseIterable {
        case f32 = "F32"
        case f16 = "F16"
        case bf16 = "BF16"
        case f64 = "F64"

        /// Bytes per element.
        var size: Int {
            switch self {
            case .f32: return 4
            case .f16, .bf16: return 2
            case .f64: return 8
            }
        }

        /// Converts `count` little-endian elements starting at `source` to `Float`.
        func decode(_ source: UnsafeRawPointer, count: Int) -> [Float] {
            [Float](unsafeUninitializedCapacity: count) { out, initialized in
                switch self {
                case .f32:
                    #if _endian(little)
                    UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: source, byteCount: count * 4)
                    #else
                    for i in 0..<count {
                        out[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    }
                    #endif
                case .f16:
                    for i in 0..<count {
                        out[i] = halfToFloat(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                    }
                case .bf16:
                    for i in 0..<count {
                        let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                        out[i] = Float(bitPattern: UInt32(bits) << 16)
                    }
                case .f64:
                    for i in 0..<count {
                        out[i] = Float(Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                    }
                }
                initialized = count
            }
        }
    }

    /// Names of the dtypes `read` accepts.
    static var supportedDTypes: [String] { DType.allCases.map(\.rawValue) }
}

/// IEEE 754 binary16 bits to `Float`, exactly (every half value is representable).
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32((h >> 10) & 0x1f)
    let mantissa = UInt32(h & 0x3ff)
    switch exponent {
    case 0:
        // Zero or subnormal: mantissa × 2^-24.
        let magnitude = Float(mantissa) * 0x1p-24
        return sign == 0 ? magnitude : -magnitude
    case 0x1f:
        // Infinity or NaN (payload kept).
        return Float(bitPattern: sign | 0x7f80_0000 | mantissa << 13)
    default:
        return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
    }
}
