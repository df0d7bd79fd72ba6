import BranchyTensor
import CBranchyKernels
import Foundation

/// A network compiled for inference on one kernel path: each stage's layers fused into
/// steps over weights packed once (convolution with the batch norm, ReLU and max pooling
/// that follow it, linear layers with their ReLU, a residual block's sum with its ReLU),
/// run on caller-owned ``InferenceWorkspace``s so that a sample allocates nothing.
///
/// Results per sample do not depend on the batch: every output element is the same chain
/// of multiply-adds whether the sample runs alone or among others, at any position. The
/// compiled network copies the weights; a network trained further must be compiled again.
public final class CompiledNetwork: Sendable {
    /// One stage: its trunk and exit steps.
    public struct Stage: Sendable {
        public let name: String
        public let inputCount: Int
        public let featureShape: [Int]
        public var featureCount: Int { featureShape.reduce(1, *) }
        /// Whether the stage was compiled (every stage unless the network was compiled for some only).
        public let isCompiled: Bool
        let trunk: [any CompiledStep]
        let exit: [any CompiledStep]
    }

    public let network: Network
    public let isa: KernelISA
    public let stages: [Stage]
    public let classes: Int
    /// Samples the batched steps take at once (the kernel path's micro-tile rows).
    public let group: Int
    /// Floats per sample of the largest activation between steps.
    let maxActivation: Int
    /// Floats of the largest convolution output map.
    let maxMap: Int
    /// Floats of the largest linear scratch.
    let maxLinearScratch: Int
    /// Floats of the convolutions' input buffers (one per geometry), one after the other.
    let convBuffers: Int
    /// Levels of workspace buffers: 1 + the deepest nesting of residual blocks.
    let levels: Int
    /// Whether a batch norm directly after a convolution is folded into it.
    public let foldsBatchNorm: Bool
    /// Convolutions that run in int8 (those an int8 calibration covers), and their kernel path.
    public let quantizedConvolutions: Int
    public let qisa: QuantizedISA

    /// Compiles `network` for `isa` (default: the active path; a path this CPU cannot run
    /// falls back to the widest it can). With `foldBatchNorm` (the default) a batch norm that
    /// directly follows a convolution is folded into its weights and bias; without, it runs
    /// as a step of its own (the reference the folded form is tested against). With `winograd`
    /// (the default) 3×3 convolutions at stride 1 and pad 1 with at least 16 channels in and out
    /// run as Winograd F(2×2, 3×3) (``WinogradConv2D``); without, as direct products. With `stages`
    /// (indices), only those stages are compiled, and the workspaces sized for them: a node packs
    /// the weights of the stages it hosts, not the whole network's. With `int8`, every convolution
    /// the calibration covers runs in int8 (``QuantizedConv2D``) on `qisa`. With `observer`, every
    /// float convolution records the range of its input there (what `branchy quantize` measures).
    public init(_ network: Network, isa requested: KernelISA = .active, foldBatchNorm: Bool = true, winograd: Bool = true,
                stages hosted: Set<Int>? = nil, int8: Int8Calibration? = nil, qisa requestedQ: QuantizedISA = .active,
                observer: ActivationObserver? = nil) {
        let isa = requested.isSupported ? requested : .best
        self.network = network
        self.isa = isa
        self.classes = network.spec.classes
        self.group = isa.mr
        self.foldsBatchNorm = foldBatchNorm
        let qisa = requestedQ.isSupported ? requestedQ : .best
        self.qisa = qisa
        var compiler = StepCompiler(isa: isa, foldBatchNorm: foldBatchNorm, winograd: winograd, int8: int8?.quantizations, qisa: qisa,
                                    observer: observer)
        let compiles = { (i: Int) in hosted?.contains(i) ?? true }
        compiler.maxActivation = network.stages.indices.filter(compiles).map { network.stages[$0].inputShape.reduce(1, *) }.max() ?? 0
        stages = network.stages.enumerated().map { i, s in
            let on = compiles(i)
            return Stage(name: s.name, inputCount: s.inputShape.reduce(1, *), featureShape: s.outputShape, isCompiled: on,
                         trunk: on ? compiler.compile(s.trunk, level: 0) : [], exit: on ? compiler.compile(s.exit, level: 0) : [])
        }
        maxActivation = compiler.maxActivation
        maxMap = compiler.maxMap
        maxLinearScratch = compiler.maxLinearScratch
        convBuffers = compiler.bufferOffset
        levels = compiler.levels
        quantizedConvolutions = compiler.quantizedConvolutions
    }

    /// A workspace for one thread of this network (any stage).
    public func makeWorkspace() -> InferenceWorkspace {
        var sizes = [convBuffers, maxMap + 64, maxLinearScratch + 64]
        for level in 0..<levels {
            // Two per-sample buffers, two for a group's outputs in turn, and one for the
            // shortcut of a residual block at this level (none needed at the deepest).
            sizes += [maxActivation, maxActivation, group * maxActivation, group * maxActivation,
                      level + 1 < levels ? group * maxActivation : 0]
        }
        return InferenceWorkspace(owner: ObjectIdentifier(self), sizes: sizes)
    }

    /// Runs stage `index` on `count` samples: input (count × inputCount) → features
    /// (count × featureCount) and exit logits (count × classes). Allocates nothing.
    public func run(stage index: Int, count: Int, input: UnsafePointer<Float>,
                    features: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>,
                    workspace: InferenceWorkspace) {
        // Its regions (zero borders included) are laid out for this network only.
        guard workspace.owner == ObjectIdentifier(self) else { fatalError("a workspace made by another compiled network") }
        let s = stages[index]
        guard s.isCompiled else { fatalError("stage \(s.name) was not compiled in this network") }
        var done = 0
        while done < count {
            let n = min(group, count - done)
            runSteps(s.trunk, n, input + done * s.inputCount, s.inputCount, features + done * s.featureCount, workspace, level: 0)
            runSteps(s.exit, n, features + done * s.featureCount, s.featureCount, logits + done * classes, workspace, level: 0)
            done += n
        }
    }

    /// Runs stage `index` on `count` samples held in an array: (features, logits), each
    /// `count` rows long. The array form of ``run(stage:count:input:features:logits:workspace:)``.
    public func run(stage index: Int, count: Int, input: [Float], workspace: InferenceWorkspace) -> (features: [Float], logits: [Float]) {
        let s = stages[index]
        precondition(input.count >= count * s.inputCount, "stage \(s.name): \(count) samples need \(count * s.inputCount) floats, got \(input.count)")
        var features = [Float](repeating: 0, count: max(1, count * s.featureCount))
        var logits = [Float](repeating: 0, count: max(1, count * classes))
        if count > 0 {
            input.withUnsafeBufferPointer { x in
                features.withUnsafeMutableBufferPointer { f in
                    logits.withUnsafeMutableBufferPointer { l in
                        run(stage: index, count: count, input: x.baseAddress!, features: f.baseAddress!, logits: l.baseAddress!, workspace: workspace)
                    }
                }
            }
        }
        return (Array(features.prefix(count * s.featureCount)), Array(logits.prefix(count * classes)))
    }

    /// Workspace buffer `slot` of `level`: 0 and 1 per sample, 2 and 3 for a group's outputs,
    /// 4 a residual block's shortcut.
    @inline(__always)
    func buffer(_ ws: InferenceWorkspace, level: Int, _ slot: Int) -> UnsafeMutablePointer<Float> {
        ws.buffer(3 + 5 * level + slot)
    }

    /// Runs `steps` on n ≤ group samples: x (n × inCount) → y (n × the last step's output).
    /// Values between steps live in `level`'s buffers; x and y must lie outside them.
    func runSteps(_ steps: [any CompiledStep], _ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int,
                  _ y: UnsafeMutablePointer<Float>, _ ws: InferenceWorkspace, level: Int) {
        if steps.isEmpty {
            y.update(from: x, count: n * inCount)
            return
        }
        var cur = x, curCount = inCount
        var flip = false
        var i = 0
        while i < steps.count {
            var j = i + 1
            if steps[i].perSample { while j < steps.count && steps[j].perSample { j += 1 } }
            let last = j == steps.count
            let dst = last ? y : buffer(ws, level: level, flip ? 3 : 2)
            if steps[i].perSample {
                let outCount = steps[j - 1].outputCount
                for s in 0..<n {
                    var a = cur + s * curCount
                    for t in i..<j {
                        let out = t == j - 1 ? dst + s * outCount : buffer(ws, level: level, (t - i) % 2)
                        steps[t].runSample(a, out, workspace: ws)
                        a = UnsafePointer(out)
                    }
                }
                curCount = outCount
            } else {
                steps[i].runGroup(n, cur, curCount, dst, GroupRun(network: self, workspace: ws, level: level))
                curCount = steps[i].outputCount
            }
            cur = UnsafePointer(dst)
            flip.toggle()
            i = j
        }
    }
}

/// Buffers one thread needs to run a ``CompiledNetwork``, allocated (and zeroed) once.
///
/// A workspace is used by one thread at a time: each thread owns its own, or takes one from
/// a ``WorkspacePool`` and gives it back. That hand-over discipline, not the compiler, is
/// what makes passing it between threads safe, so the conformance is unchecked.
public final class InferenceWorkspace: @unchecked Sendable {
    private let storage: UnsafeMutablePointer<Float>
    private let starts: [Int]
    private let total: Int
    /// The compiled network the layout is for.
    let owner: ObjectIdentifier

    init(owner: ObjectIdentifier, sizes: [Int]) {
        self.owner = owner
        var starts: [Int] = []
        var at = 0
        for s in sizes {
            starts.append(at)
            at += (max(s, 1) + 15) / 16 * 16
        }
        total = at
        self.starts = starts
        storage = UnsafeMutablePointer<Float>.allocate(capacity: at)
        storage.initialize(repeating: 0, count: at)
    }

    deinit { storage.deallocate() }

    /// Bytes held.
    public var bytes: Int { total * MemoryLayout<Float>.size }

    @inline(__always)
    func buffer(_ index: Int) -> UnsafeMutablePointer<Float> { storage + starts[index] }
}

extension CompiledNetwork {
    /// Runs stage `index` like ``run(stage:count:input:features:logits:workspace:)``, with the
    /// samples split across up to `workspaces.count` threads (one workspace each).
    public func runParallel(stage index: Int, count: Int, input: UnsafePointer<Float>,
                            features: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>,
                            workspaces: [InferenceWorkspace]) {
        let s = stages[index]
        let groups = (count + group - 1) / group
        guard !workspaces.isEmpty else { fatalError("runParallel needs at least one workspace") }
        if workspaces.count <= 1 || groups < 2 {
            run(stage: index, count: count, input: input, features: features, logits: logits, workspace: workspaces[0])
            return
        }
        _ = Parallel.forEachWorker(groups, maxWorkers: workspaces.count) { w, r in
            let lo = r.lowerBound * group, hi = min(count, r.upperBound * group)
            run(stage: index, count: hi - lo, input: input + lo * s.inputCount, features: features + lo * s.featureCount,
                logits: logits + lo * classes, workspace: workspaces[w])
        }
    }
}

/// Workspaces of one compiled network, taken by whichever thread runs a stage and given back.
/// Grows to the largest number used at once, then allocates nothing.
///
/// The free list is guarded by a pthread-based lock (which ThreadSanitizer sees as
/// synchronisation); every access to it holds the lock, which is what makes the unchecked
/// conformance sound.
public final class WorkspacePool: @unchecked Sendable {
    public let network: CompiledNetwork
    private let lock = NSLock()
    private var free: [InferenceWorkspace] = []

    public init(network: CompiledNetwork) {
        self.network = network
    }

    /// Runs `body` with a workspace no other thread uses meanwhile.
    public func withWorkspace<R>(_ body: (InferenceWorkspace) throws -> R) rethrows -> R {
        lock.lock()
        let taken = free.popLast()
        lock.unlock()
        let ws = taken ?? network.makeWorkspace()
        defer {
            lock.lock()
            free.append(ws)
            lock.unlock()
        }
        return try body(ws)
    }
}
