import BranchyTensor

/// Turns layers into compiled steps, keeping the sizes the workspaces need.
struct StepCompiler {
    let isa: KernelISA
    let foldBatchNorm: Bool
    var maxActivation = 0, maxMap = 0, maxLinearScratch = 0
    /// Floats of the convolutions' input buffers so far; convolutions of one geometry share one.
    var bufferOffset = 0
    var buffers: [ConvBufferKey: Int] = [:]
    /// Workspace levels: 1 + the deepest nesting of residual blocks.
    var levels = 1

    struct ConvBufferKey: Hashable { var geometry: Conv2DGeometry; var batch: Int }

    init(isa: KernelISA, foldBatchNorm: Bool) { self.isa = isa; self.foldBatchNorm = foldBatchNorm }

    mutating func compile(_ layers: [Layer], level: Int) -> [CompiledStep] {
        levels = max(levels, level + 1)
        var steps: [CompiledStep] = []
        var i = 0
        while i < layers.count {
            let layer = layers[i]
            maxActivation = max(maxActivation, layer.outputShape.reduce(1, *))
            switch layer {
            case let conv as ConvLayer:
                var weight = conv.weight.value, bias = conv.bias?.value
                var j = i + 1
                if foldBatchNorm, j < layers.count, let bn = layers[j] as? BatchNormLayer {
                    let folded = Self.fold(bn, into: weight, bias)
                    weight = folded.weight; bias = folded.bias
                    j += 1
                }
                // Fuse what follows: ReLU and max pooling, in either order (max commutes with ReLU).
                var relu = false, pool: Pool2DGeometry? = nil
                while j < layers.count {
                    if layers[j] is ReLULayer, !relu { relu = true; j += 1; continue }
                    if let p = layers[j] as? MaxPoolLayer, pool == nil { pool = p.geometry; j += 1; continue }
                    break
                }
                var step = ConvStep(geometry: conv.geometry, weight: weight, bias: bias, relu: relu, pool: pool, isa: isa, group: isa.mr)
                // The buffer's contents depend on the geometry only (the interior of the zero-bordered
                // copy and the im2col matrix are rewritten on every use, the border stays zero), so
                // convolutions of one geometry, which never run at once, share it.
                let key = ConvBufferKey(geometry: conv.geometry, batch: step.batch)
                if let offset = buffers[key] {
                    step.bufferOffset = offset
                } else {
                    step.bufferOffset = bufferOffset
                    buffers[key] = bufferOffset
                    bufferOffset += (step.bufferFloats + 15) / 16 * 16
                }
                maxMap = max(maxMap, step.mapFloats)
                maxActivation = max(maxActivation, step.outputCount, conv.geometry.outputCount)
                steps.append(.conv(step))
                i = j
            case let linear as LinearLayer:
                let relu = i + 1 < layers.count && layers[i + 1] is ReLULayer
                let step = LinearStep(weight: linear.weight.value, bias: linear.bias?.value, relu: relu, isa: isa)
                maxLinearScratch = max(maxLinearScratch, step.scratchFloats)
                steps.append(.linear(step))
                i += relu ? 2 : 1
            case let linear as BinaryLinearLayer:
                let step = BinaryLinearStep(weight: linear.weight.value, bias: linear.bias?.value, isa: isa)
                maxLinearScratch = max(maxLinearScratch, step.scratchFloats(isa.mr))
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
            case let pool as AvgPoolLayer:
                steps.append(.avgPool(pool.geometry))
                i += 1
            case is ReLULayer:
                steps.append(.relu(count: layer.outputShape.reduce(1, *)))
                i += 1
            case let lrn as LRNLayer:
                steps.append(.lrn(lrn.norm))
                i += 1
            case let pad as PadChannelsLayer:
                steps.append(.padChannels(inputCount: pad.inputCount, outputCount: pad.outputCount, offset: pad.offset))
                i += 1
            case let block as ResidualLayer:
                let relu = i + 1 < layers.count && layers[i + 1] is ReLULayer
                let step = ResidualStep(body: compile(block.body, level: level + 1), shortcut: compile(block.shortcut, level: level + 1),
                                        outputCount: block.outputShape.reduce(1, *), relu: relu)
                steps.append(.residual(step))
                i += relu ? 2 : 1
            default:
                fatalError("no compiled form for \(type(of: layer))")
            }
        }
        return steps
    }

    /// A convolution's weight and bias with the batch norm that follows it folded in: per output
    /// channel, w · scale and b · scale + shift (b = 0 without a bias), scale and shift the
    /// normalisation's inference form.
    static func fold(_ bn: BatchNormLayer, into weight: Tensor, _ bias: Tensor?) -> (weight: Tensor, bias: Tensor) {
        let (scale, shift) = BatchNorm.affine(mean: bn.mean, variance: bn.variance, gamma: bn.gamma.value,
                                              beta: bn.beta.value, epsilon: bn.epsilon)
        var w = weight, b = Tensor(shape: [scale.count])
        let per = weight.count / scale.count
        for o in 0..<scale.count {
            for k in (o * per)..<((o + 1) * per) { w.data[k] *= scale[o] }
            b.data[o] = (bias?.data[o] ?? 0) * scale[o] + shift[o]
        }
        return (w, b)
    }
}
