extension Network {
    /// The keys of the convolutions an int8 calibration covers (``Int8Calibration/activations``),
    /// in stage order, for the stages `stages` (all when nil).
    public func convolutionKeys(stages hosted: Set<Int>? = nil) -> [String] {
        stages.indices.filter { hosted?.contains($0) ?? true }.flatMap { i in
            (stages[i].trunk + stages[i].exit).flattened.compactMap { ($0 as? ConvLayer)?.quantizationKey }
        }
    }
}

extension ConvLayer {
    /// The convolution's name in an int8 calibration: its weights' name without `.weight`.
    var quantizationKey: String {
        weight.name.hasSuffix(".weight") ? String(weight.name.dropLast(".weight".count)) : weight.name
    }
}
