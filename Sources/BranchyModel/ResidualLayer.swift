import BranchyTensor

/// A residual block (`residual`): y = body(x) + shortcut(x), the shortcut the identity when it
/// has no layers. Its parameters are those of its layers, named as if they stood in the
/// enclosing list.
final class ResidualLayer: Layer {
    let name: String
    let body: [Layer]
    let shortcut: [Layer]

    init(name: String, body: [Layer], shortcut: [Layer], inputShape: [Int], outputShape: [Int]) {
        self.name = name
        self.body = body
        self.shortcut = shortcut
        super.init(inputShape: inputShape, outputShape: outputShape)
    }

    override var parameters: [Parameter] { (body + shortcut).flatMap(\.parameters) }
    override var sublayers: [Layer] { body + shortcut }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        var y = body.reduce(x) { $1.forward($0, training: training) }
        let s = shortcut.reduce(x) { $1.forward($0, training: training) }
        add(s, into: &y)
        return y
    }

    /// The gradient reaches the input through both branches: dx = dbody + dshortcut (dy itself
    /// for the identity). Without `needInputGradient` the branches still run backward for
    /// their parameters, and only their first layers skip the input gradient.
    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        let dBody = Self.backward(body, dy, needInputGradient: needInputGradient)
        let dShortcut = Self.backward(shortcut, dy, needInputGradient: needInputGradient)
        guard needInputGradient, var dx = dBody, let dShortcut else { return nil }
        add(dShortcut, into: &dx)
        return dx.reshaped([dy.batch] + inputShape)
    }

    /// Back through `layers` in reverse; `dy` itself when there are none.
    private static func backward(_ layers: [Layer], _ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        var d = dy
        for (i, layer) in layers.enumerated().reversed() {
            let need = i > 0 || needInputGradient
            let g = layer.backward(d, needInputGradient: need)
            if !need { return nil }
            d = g!
        }
        return d
    }

    override func clearCache() { for l in body + shortcut { l.clearCache() } }

    private func add(_ a: Tensor, into y: inout Tensor) {
        precondition(a.count == y.count, "residual block '\(name)': branches of \(a.count) and \(y.count) values")
        y.data.withUnsafeMutableBufferPointer { yp in
            a.data.withUnsafeBufferPointer { ap in for i in 0..<yp.count { yp[i] += ap[i] } }
        }
    }
}

/// Zero channels around the input's (`padchannels`): (C, H, W) → (out, H, W) with the input in
/// channels front ..< front + C. The zero-padded shortcut of BranchyNet's ResNet blocks.
final class PadChannelsLayer: Layer {
    let front: Int

    init(inputShape: [Int], out: Int, front: Int) {
        self.front = front
        super.init(inputShape: inputShape, outputShape: [out] + inputShape.dropFirst())
    }

    /// Floats of one sample's input and output.
    var inputCount: Int { inputShape.reduce(1, *) }
    var outputCount: Int { outputShape.reduce(1, *) }
    /// Where the input starts in one sample's output.
    var offset: Int { front * inputShape.dropFirst().reduce(1, *) }

    /// One sample x → y (outputCount floats). Allocates nothing.
    static func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, inputCount: Int, outputCount: Int, offset: Int) {
        y.update(repeating: 0, count: offset)
        (y + offset).update(from: x, count: inputCount)
        (y + offset + inputCount).update(repeating: 0, count: outputCount - offset - inputCount)
    }

    override func forward(_ x: Tensor, training: Bool) -> Tensor {
        let n = x.count / inputCount
        var y = Tensor(shape: [n] + outputShape)
        for s in 0..<n { y.data.replaceSubrange((s * outputCount + offset)..<(s * outputCount + offset + inputCount),
                                                with: x.data[(s * inputCount)..<((s + 1) * inputCount)]) }
        return y
    }

    override func backward(_ dy: Tensor, needInputGradient: Bool) -> Tensor? {
        let n = dy.count / outputCount
        var dx = Tensor(shape: [n] + inputShape)
        for s in 0..<n { dx.data.replaceSubrange((s * inputCount)..<((s + 1) * inputCount),
                                                 with: dy.data[(s * outputCount + offset)..<(s * outputCount + offset + inputCount)]) }
        return dx
    }
}
