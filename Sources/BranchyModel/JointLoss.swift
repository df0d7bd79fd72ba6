import BranchyTensor

extension Network {
    /// One training forward and backward pass of the BranchyNet joint loss — the weighted sum of
    /// every exit's mean softmax cross-entropy — on a batch: leaves the loss's gradient in every
    /// `Parameter.grad` (accumulated onto what is there) and returns the loss and, per exit, how
    /// many samples it classified correctly. Each exit's gradient joins the trunk gradient coming
    /// back from the later stages at the end of its stage.
    public func jointLossGradients(images: Tensor, labels: [Int], exitWeights: [Float]) -> (loss: Float, correct: [Int]) {
        let exits = stages.count
        var features = images
        var dLogits: [Tensor] = []
        var loss: Float = 0
        var correct = [Int](repeating: 0, count: exits)
        for i in 0..<exits {
            features = trunk(i, features, training: true)
            let logits = exitLogits(i, features, training: true)
            let (l, d) = Softmax.crossEntropy(logits: logits, labels: labels, weight: exitWeights[i])
            loss += exitWeights[i] * l
            dLogits.append(d)
            for (s, p) in Softmax.argmax(logits).enumerated() where p == labels[s] { correct[i] += 1 }
        }
        var dNext: Tensor? = nil
        for i in stride(from: exits - 1, through: 0, by: -1) {
            let stage = stages[i]
            var d = dLogits[i]
            for layer in stage.exit.reversed() { d = layer.backward(d, needInputGradient: true)! }
            if let dn = dNext {
                d.data.withUnsafeMutableBufferPointer { a in dn.data.withUnsafeBufferPointer { b in
                    for j in 0..<a.count { a[j] += b[j] }
                } }
            }
            for (li, layer) in stage.trunk.enumerated().reversed() {
                // The network's input needs no gradient.
                if let g = layer.backward(d, needInputGradient: i > 0 || li > 0) { d = g }
            }
            dNext = d
        }
        return (loss, correct)
    }
}
