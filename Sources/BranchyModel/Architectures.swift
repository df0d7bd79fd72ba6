/// Built-in architectures, as written to `model.json` by `branchy train --arch NAME`.
public enum Architectures {
    /// Names accepted by `named(_:)`.
    public static let names = ["b-lenet", "b-lenet3", "b-lenet3-bin"]

    /// The description of a built-in architecture, or nil.
    public static func named(_ name: String) -> ModelSpec? {
        switch name {
        case "b-lenet": return bLeNet
        case "b-lenet3": return bLeNet3
        case "b-lenet3-bin": return bLeNet3Bin
        default: return nil
        }
    }

    /// Why a built-in architecture is laid out the way it is (for its model card).
    public static func rationale(_ name: String) -> String? {
        switch name {
        case "b-lenet":
            return """
            The paper's B-LeNet as in BranchyNet's released code: exit 1 after conv1 (5 channels), the final exit after \
            the LeNet trunk. Split between two tiers after conv1, it forwards a 5×30×30 map: 4,500 values, more than \
            the 784-pixel input, which is DDNN's point: an early split only pays off when the forwarded features are small.
            """
        case "b-lenet3":
            return """
            Three stages for device, edge and cloud. Compared with the paper's layout: conv1 has 8 channels instead \
            of 5 (with 5, every later stage is limited and the final exit stays near 90%); the device adds a second \
            3×3 convolution and pools twice, so it forwards an 8×7×7 map, 392 values (392 bytes as int8, half the raw \
            image) instead of the paper's 5×30×30; its exit is a single linear layer, cheap enough for a camera. The \
            edge adds one 3×3 convolution to 32 channels with its own linear exit; the cloud widens to 64 channels \
            with a 256-unit hidden layer, for the final accuracy.
            """
        case "b-lenet3-bin":
            return """
            b-lenet3 with DDNN's binarised device stage (eBNN). The device keeps b-lenet3's two convolutions (8 \
            channels, 5×5 then 3×3, each pooled), then a batch normalisation trained with batch statistics and a sign: \
            it forwards an 8×7×7 map of ±1, 392 bits (49 bytes once bit-packed, 1/16 of the raw image). The \
            normalisation centres each channel before the sign, so its bits carry information and the clipped \
            straight-through gradient (zero where the input leaves [−1, 1]) reaches most values. The device exit is \
            binary throughout, XNOR-Net style (α · dot(sign x, sign W) + b, computed with XOR and popcount): 392 bits \
            to 128, a batch normalisation and a sign, then 128 bits to the 10 classes. The hidden layer makes the \
            device exit sure of more samples (one binary layer alone reached 85.4% on its own; with the hidden layer \
            the device answers four samples in five at the calibrated threshold); its 50,176 binary weights are \
            6.3 KB packed. The 1-bit bottleneck costs the later exits about two points with b-lenet3's edge and \
            cloud, so both are widened: the edge runs 32 then 16 channels (3×3) and forwards 16×4×4 = 256 values, \
            fewer than the device; the cloud runs two 64-channel 3×3 convolutions and the 256-unit hidden layer.
            """
        default:
            return nil
        }
    }

    /// B-LeNet exactly as in BranchyNet's code: exit 1 after conv1, final exit after the LeNet trunk.
    /// The pools round up (ceil mode), which gives the 640 and 720 features of the paper.
    public static let bLeNet = ModelSpec(
        name: "b-lenet", input: [1, 28, 28], classes: 10,
        stages: [
            StageSpec(name: "device", trunk: [.conv("conv1", out: 5, kernel: 5, pad: 3)],
                      exit: ExitSpec(name: "exit1", layers: [
                        .maxPool(2, ceil: true), .relu, .conv("conv", out: 10, kernel: 3, pad: 1),
                        .maxPool(2, ceil: true), .relu, .flatten, .linear("fc", out: 10),
                      ])),
            StageSpec(name: "cloud", trunk: [
                .maxPool(2, ceil: true), .relu, .conv("conv2", out: 10, kernel: 5, pad: 3),
                .maxPool(2, ceil: true), .relu, .conv("conv3", out: 20, kernel: 5, pad: 3),
                .maxPool(2, ceil: true), .relu,
            ], exit: ExitSpec(name: "final", layers: [.flatten, .linear("fc1", out: 84), .linear("fc2", out: 10)])),
        ])

    /// Three stages for device, edge and cloud. The device stage ends in an 8×7×7 feature map
    /// (392 values: 392 bytes with the int8 codec, half the 784-byte raw image).
    public static let bLeNet3 = ModelSpec(
        name: "b-lenet3", input: [1, 28, 28], classes: 10,
        stages: [
            StageSpec(name: "device", trunk: [
                .conv("conv1", out: 8, kernel: 5, pad: 2), .maxPool(2), .relu,
                .conv("conv2", out: 8, kernel: 3, pad: 1), .maxPool(2), .relu,
            ], exit: ExitSpec(name: "device-exit", layers: [.flatten, .linear("fc", out: 10)])),
            StageSpec(name: "edge", trunk: [
                .conv("conv3", out: 32, kernel: 3, pad: 1), .maxPool(2, ceil: true), .relu,
            ], exit: ExitSpec(name: "edge-exit", layers: [.flatten, .linear("fc", out: 10)])),
            StageSpec(name: "cloud", trunk: [
                .conv("conv4", out: 64, kernel: 3, pad: 1), .maxPool(2), .relu,
            ], exit: ExitSpec(name: "cloud-exit", layers: [.flatten, .linear("fc1", out: 256), .relu, .linear("fc2", out: 10)])),
        ])

    /// b-lenet3 with a binarised device stage (DDNN's eBNN): the device trunk ends in a sign, so it
    /// forwards 8×7×7 = 392 values of ±1 (one bit each), and its exit is an XNOR-Net binary linear layer.
    public static let bLeNet3Bin = ModelSpec(
        name: "b-lenet3-bin", input: [1, 28, 28], classes: 10,
        stages: [
            StageSpec(name: "device", trunk: [
                .conv("conv1", out: 8, kernel: 5, pad: 2), .maxPool(2), .relu,
                .conv("conv2", out: 8, kernel: 3, pad: 1), .maxPool(2), .batchNorm("bn2", momentum: 0.1), .sign,
            ], exit: ExitSpec(name: "device-exit", layers: [
                .flatten, .binaryLinear("fcA", out: 128), .batchNorm("bnA", momentum: 0.1), .sign, .binaryLinear("fc", out: 10),
            ])),
            StageSpec(name: "edge", trunk: [
                .conv("conv3", out: 32, kernel: 3, pad: 1), .relu,
                .conv("conv3b", out: 16, kernel: 3, pad: 1), .maxPool(2, ceil: true), .relu,
            ], exit: ExitSpec(name: "edge-exit", layers: [.flatten, .linear("fc", out: 10)])),
            StageSpec(name: "cloud", trunk: [
                .conv("conv4", out: 64, kernel: 3, pad: 1), .relu,
                .conv("conv5", out: 64, kernel: 3, pad: 1), .maxPool(2), .relu,
            ], exit: ExitSpec(name: "cloud-exit", layers: [.flatten, .linear("fc1", out: 256), .relu, .linear("fc2", out: 10)])),
        ])
}
