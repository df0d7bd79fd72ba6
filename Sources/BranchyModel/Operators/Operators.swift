/// The registry of operators: the one list that names every kind of layer.
enum Operators {
    /// Every operator, in the order error messages list them. Exclusive keys are checked in
    /// this order too.
    static var all: [any Operator.Type] {
        [ConvLayer.self, MaxPoolLayer.self, AvgPoolLayer.self, ReLULayer.self, FlattenLayer.self, LinearLayer.self,
         BatchNormLayer.self, ResidualLayer.self, LRNLayer.self, PadChannelsLayer.self, SignLayer.self,
         BinaryLinearLayer.self, HardSwishLayer.self, ClipLayer.self, LeakyReLULayer.self, SigmoidLayer.self,
         HardSigmoidLayer.self, GlobalAvgPoolLayer.self, BranchesLayer.self]
    }

    /// The operator whose `op` is `name`, or nil.
    static func named(_ name: String) -> (any Operator.Type)? {
        all.first { $0.op == name }
    }

    /// Every `op` name as a message lists them: `conv, maxpool, … or hardswish`.
    static var names: String {
        let ops = all.map { $0.op }
        return ops.dropLast().joined(separator: ", ") + " or " + ops.last!
    }
}
