import BranchyTensor
import CBranchyKernels
import Foundation

/// A network compiled for inference on one kernel path: each stage's layers fused into
/// steps over weights packed once (convolution with its ReLU and max pooling, linear
/// layers with their ReLU), run on caller-owned ``InferenceWorkspace``s so that a sample
/// allocates nothing.
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
        let trunk: [CompiledStep]
        let exit: [CompiledStep]
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
    /// Floats of every convolution's own input buffer, one after the other.
    let convBuffers: Int

    /// Compiles `network` for `isa` (default: the active path; a path this CPU cannot run
    /// falls back to the widest it can).
    public init(_ network: Network, isa requested: KernelISA = .active) {
        let isa = requested.isSupported ? requested : .best
        self.network = network
        self.isa = isa
        self.classes = network.spec.classes
        self.group = isa.mr
        var bufferOffset = 0
        var maxAct = network.stages.map { $0.inputShape.reduce(1, *) }.max() ?? 0
        var maxMap = 0, maxScratch = 0
        func compile(_ layers: [Layer], stage: Int, exit: Bool) -> [CompiledStep] {
            var steps: [CompiledStep] = []
            var i = 0
            while i < layers.count {
                let layer = layers[i]
                maxAct = max(maxAct, layer.outputShape.reduce(1, *))
                switch layer {
                case let conv as ConvLayer:
                    // Fuse what follows: ReLU and max pooling, in either order (max commutes with ReLU).
                    var relu = false, pool: Pool2DGeometry? = nil
                    var j = i + 1
                    while j < layers.count {
                        if layers[j] is ReLULayer, !relu { relu = true; j += 1; continue }
                        if let p = layers[j] as? MaxPoolLayer, pool == nil { pool = p.geometry; j += 1; continue }
                        break
                    }
                    var step = ConvStep(geometry: conv.geometry, weight: conv.weight.value, bias: conv.bias?.value,
                                        relu: relu, pool: pool, isa: isa, group: isa.mr)
                    step.bufferOffset = bufferOffset
                    bufferOffset += (step.bufferFloats + 15) / 16 * 16
                    maxMap = max(maxMap, step.mapFloats)
                    maxAct = max(maxAct, step.outputCount, conv.geometry.outputCount)
                    steps.append(.conv(step))
                    i = j
                case let linear as LinearLayer:
                    let relu = i + 1 < layers.count && layers[i + 1] is ReLULayer
                    let step = LinearStep(weight: linear.weight.value, bias: linear.bias?.value, relu: relu, isa: isa)
                    maxScratch = max(maxScratch, step.scratchFloats)
                    steps.append(.linear(step))
                    i += relu ? 2 : 1
                case let linear as BinaryLinearLayer:
                    let step = BinaryLinearStep(weight: linear.weight.value, bias: linear.bias?.value, isa: isa)
                    maxScratch = max(maxScratch, step.scratchFloats(isa.mr))
                    steps.append(.binaryLinear(step))
                    i += 1
                case is SignLayer:
                    steps.append(.sign(count: layer.outputShape.reduce(1, *)))
                    i += 1
                case let bn as BatchNormLayer:
                    let (scale, shift) = BatchNorm.affine(mean: bn.mean, variance: bn.variance, gamma: bn.gamma.value,
                                                          beta: bn.beta.value, epsilon: bn.epsilon)
                    steps.append(.affine(scale: scale, shift: shift, plane: layer.outputShape.dropFirst().reduce(1, *)))
                    i += 1
                case is FlattenLayer:
                    i += 1
                case let pool as MaxPoolLayer:
                    let relu = i + 1 < layers.count && layers[i + 1] is ReLULayer
                    steps.append(.maxPool(pool.geometry, relu: relu))
                    i += relu ? 2 : 1
                case is ReLULayer:
                    steps.append(.relu(count: layer.outputShape.reduce(1, *)))
                    i += 1
                default:
                    steps.append(.layer(stage: stage, exit: exit, index: i, inputShape: layer.inputShape, outputShape: layer.outputShape))
                    i += 1
                }
            }
            return steps
        }
        stages = network.stages.enumerated().map { index, s in
            Stage(name: s.name, inputCount: s.inputShape.reduce(1, *), featureShape: s.outputShape,
                  trunk: compile(s.trunk, stage: index, exit: false), exit: compile(s.exit, stage: index, exit: true))
        }
        maxActivation = maxAct
        self.maxMap = maxMap
        maxLinearScratch = maxScratch
        convBuffers = bufferOffset
    }

    /// A workspace for one thread of this network (any stage).
    public func makeWorkspace() -> InferenceWorkspace {
        InferenceWorkspace(owner: ObjectIdentifier(self), sizes: [convBuffers, maxMap + 64, maxLinearScratch + 64, maxActivation, maxActivation,
                                   group * maxActivation, group * maxActivation])
    }

    /// Runs stage `index` on `count` samples: input (count × inputCount) → features
    /// (count × featureCount) and exit logits (count × classes). Allocates nothing.
    public func run(stage index: Int, count: Int, input: UnsafePointer<Float>,
                    features: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>,
                    workspace: InferenceWorkspace) {
        // Its regions (zero borders included) are laid out for this network only.
        guard workspace.owner == ObjectIdentifier(self) else { fatalError("a workspace made by another compiled network") }
        let s = stages[index]
        var done = 0
        while done < count {
            let n = min(group, count - done)
            runSteps(s.trunk, n, input + done * s.inputCount, s.inputCount, features + done * s.featureCount, workspace)
            runSteps(s.exit, n, features + done * s.featureCount, s.featureCount, logits + done * classes, workspace)
            done += n
        }
    }

    /// Runs `steps` on n ≤ group samples: x (n × inCount) → y (n × the last step's output).
    private func runSteps(_ steps: [CompiledStep], _ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int,
                          _ y: UnsafeMutablePointer<Float>, _ ws: InferenceWorkspace) {
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
            let dst = last ? y : ws.buffer(flip ? 6 : 5)
            if steps[i].perSample {
                let outCount = steps[j - 1].outputCount
                for s in 0..<n {
                    var a = cur + s * curCount
                    for t in i..<j {
                        let out = t == j - 1 ? dst + s * outCount : ws.buffer((t - i) % 2 == 0 ? 3 : 4)
                        runPerSample(steps[t], a, out, ws)
                        a = UnsafePointer(out)
                    }
                }
                curCount = outCount
            } else {
                runGroup(steps[i], n, cur, curCount, dst, ws)
                curCount = steps[i].outputCount
            }
            cur = UnsafePointer(dst)
            flip.toggle()
            i = j
        }
    }

    private func runPerSample(_ step: CompiledStep, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                              _ ws: InferenceWorkspace) {
        switch step {
        case .conv(let c):
            c.run(x, y, workspace: ws.buffer(0), map: ws.buffer(1))
        case .maxPool(let p, let relu):
            bk_maxpool(isa.rawValue, Int32(p.channels), Int32(p.inH), Int32(p.inW), x, p.inH * p.inW, p.inW,
                       Int32(p.kernel), Int32(p.stride), Int32(p.pad), Int32(p.outH), Int32(p.outW),
                       y, p.outH * p.outW, p.outW, relu ? 1 : 0)
        case .relu(let count):
            for i in 0..<count { y[i] = x[i] > 0 ? x[i] : 0 }
        case .sign(let count):
            bk_sign(count, x, y)
        case .affine(let scale, let shift, let plane):
            for c in 0..<scale.count {
                let sc = scale[c], sh = shift[c], o = c * plane
                for i in o..<(o + plane) { y[i] = x[i] * sc + sh }
            }
        case .linear, .binaryLinear, .layer:
            preconditionFailure("not a per-sample step")
        }
    }

    private func runGroup(_ step: CompiledStep, _ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int,
                          _ y: UnsafeMutablePointer<Float>, _ ws: InferenceWorkspace) {
        switch step {
        case .linear(let l):
            l.run(n, x, y, scratch: ws.buffer(2))
        case .binaryLinear(let l):
            l.run(n, x, y, scratch: UnsafeMutableRawPointer(ws.buffer(2)))
        case .conv(let c):
            c.runBatch(n, x, y, workspace: ws.buffer(0), map: ws.buffer(1))
        case .layer(let stage, let exit, let index, let inputShape, let outputShape):
            let s = network.stages[stage]
            let layer = exit ? s.exit[index] : s.trunk[index]
            let t = Tensor(shape: [n] + inputShape, data: Array(UnsafeBufferPointer(start: x, count: n * inCount)))
            let out = layer.forward(t, training: false)
            out.data.withUnsafeBufferPointer { y.update(from: $0.baseAddress!, count: n * outputShape.reduce(1, *)) }
        default:
            preconditionFailure("not a group step")
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
