import CBranchyKernels
import Synchronization

/// The vector instruction set a kernel path is written for.
///
/// One binary carries every path of its architecture; ``KernelISA/active`` is the widest the
/// CPU supports unless the environment variable `BRANCHY_ISA` (`baseline`, `avx2`, `avx512`)
/// names a narrower one. The AVX2 and AVX-512 paths use fused multiply-adds in the same order
/// and give bit-identical results; the baseline path rounds each product separately.
public enum KernelISA: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case baseline = 0
    case avx2 = 1
    case avx512 = 2

    /// Whether this CPU can run the path.
    public var isSupported: Bool { bk_isa_supported(rawValue) != 0 }

    /// Every path this CPU can run, narrowest first.
    public static var supported: [KernelISA] { allCases.filter(\.isSupported) }

    /// The widest path this CPU can run.
    public static var best: KernelISA { KernelISA(rawValue: bk_isa_best()) ?? .baseline }

    /// Parses `baseline`, `avx2` or `avx512`.
    public init?(name: String) {
        guard let isa = Self.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = isa
    }

    public var description: String { String(cString: bk_isa_name(rawValue)) }

    /// Rows per micro-tile of packed A panels.
    public var mr: Int { Int(bk_isa_mr(rawValue)) }
    /// Columns per micro-tile of packed B panels (two vectors).
    public var nr: Int { Int(bk_isa_nr(rawValue)) }

    /// The path kernels use: the widest supported, or `BRANCHY_ISA` when it names a supported one.
    /// Set it before building compiled networks (tests set it to run every path).
    public static var active: KernelISA {
        get { KernelISA(rawValue: activeRaw.load(ordering: .relaxed)) ?? .baseline }
        set { activeRaw.store(newValue.isSupported ? newValue.rawValue : best.rawValue, ordering: .relaxed) }
    }

    private static let activeRaw = Atomic<Int32>(initialActive().rawValue)

    private static func initialActive() -> KernelISA {
        if let raw = getenv("BRANCHY_ISA"), let isa = KernelISA(name: String(cString: raw)), isa.isSupported { return isa }
        return best
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
