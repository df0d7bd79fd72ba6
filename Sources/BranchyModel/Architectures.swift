/// Built-in architectures, as written to `model.json` by `branchy train --arch NAME`.
public enum Architectures {
    /// Names accepted by `named(_:)`.
    public static let names = ["b-lenet", "b-lenet3", "b-lenet3-bin", "b-resnet3", "b-alexnet", "b-resnet110"]

    /// The description of a built-in architecture, or nil.
    public static func named(_ name: String) -> ModelSpec? {
        switch name {
        case "b-lenet": return bLeNet
        case "b-lenet3": return bLeNet3
        case "b-lenet3-bin": return bLeNet3Bin
        case "b-resnet3": return bResNet3
        case "b-alexnet": return bAlexNet
        case "b-resnet110": return bResNet110
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
            binary throughout, XNOR-Net style (α · dot(sign x, sign W) + b, where α is the mean absolute value of the output's real-valued weights; computed with XOR and popcount): 392 bits \
            to 128, a batch normalisation and a sign, then 128 bits to the 10 classes. The hidden layer makes the \
            device exit sure of more samples (one binary layer alone reached 85.4% on its own; with the hidden layer \
            the device answers four samples in five at the calibrated threshold); its 50,176 binary weights are \
            6.3 KB packed. The 1-bit bottleneck costs the later exits about two points with b-lenet3's edge and \
            cloud, so both are widened: the edge runs 32 then 16 channels (3×3) and forwards 16×4×4 = 256 values, \
            fewer than the device; the cloud runs two 64-channel 3×3 convolutions and the 256-unit hidden layer.
            """
        case "b-resnet3":
            return """
            Three stages for device, edge and cloud, built from residual blocks with batch norm (trained on batch \
            statistics, folded into the convolutions at inference). The device runs a 3×3 convolution to 8 channels \
            at 28×28, pools, runs a second 3×3 convolution at 14×14, then a 1×1 convolution squeezes to 2 channels: \
            it forwards a 2×14×14 map, 392 values (392 bytes as int8, like b-lenet3's 8×7×7) that keep twice the \
            spatial resolution. Its exit has a 64-unit hidden layer, so it is sure of more samples; the whole device \
            stage costs fewer multiply-adds than b-lenet3's (198,000 against 274,000) because its first \
            convolution is 3×3 on one channel. The edge runs a 3×3 convolution to 32 channels, pools to 7×7, runs \
            one 32-channel residual block and pools (rounding up) to 32×4×4, 512 values, with a linear exit. The \
            cloud widens to 96 channels: a convolution and two residual blocks at 4×4, average pooling and a linear \
            exit. Trained with random shifts of one pixel, flips and decoupled weight decay 0.05 for 30 epochs.
            """
        case "b-alexnet":
            return """
            The paper's B-AlexNet for CIFAR-10 (3×32×32) as BranchyNet's released code builds it \
            (networks/alex_cifar10.py): five convolutions (32, 64, 96, 96, 64 channels), max pooling 3 with \
            stride 2 rounding up as Chainer's does, local response normalisation (size 3, α 5e-5, β 0.75, k 2, \
            Chainer's form) and two hidden layers of 256 and 128 units. The code branches after the second \
            convolution (exit 1: a convolution pair of 32 channels and a linear layer on 512 values) and after \
            the third (exit 2: one convolution of 32 channels, a linear layer on 128 values); the final exit \
            is the last linear layer, 128 to 10. Each exit ends a stage, so the first stage forwards the \
            64×16×16 map of conv2 (16,384 values) and the second the 96×8×8 map of conv3 (6,144 values). \
            Differences from the code: its two dropout layers (rate 0.5, after each hidden layer) are left \
            out, as this engine has no dropout; at inference they do nothing, so the network computes the \
            same function, but training here is not regularised by them.
            """
        case "b-resnet110":
            return """
            The paper's B-ResNet-110 for CIFAR-10 (3×32×32) as BranchyNet's released code builds it \
            (networks/resnet_cifar10.py, branchynet/links/resnet.py). A basic block is conv 3×3 · batch norm · \
            ReLU · conv 3×3 · batch norm plus the shortcut, then ReLU; when a block doubles the channels and \
            halves the map, its shortcut subsamples (average pooling 1, stride 2) and pads the new channels \
            with zeros, in front of the input's as the code concatenates them (no projection). Batch norms \
            train on batch statistics with Chainer's defaults (running averages with momentum 0.1, ε 2e-5); \
            every convolution keeps its bias as in the code, and compiled inference folds each batch norm into \
            the convolution before it. The first convolution has no padding (32 → 30). Where the code and the \
            paper's description differ, this follows the code: the code puts one 16-channel block before exit \
            1 and then 18 more, so the trunk has 55 blocks (111 convolutions and the final linear layer), one \
            more than ResNet-110's 54. Exit 1 (ReLU, LRN, two 3×3 convolutions of 32 channels, max pooling, \
            linear 7200 → 3600 → 10 with no activation between, as in the code) holds 25.9 million of the \
            model's 28 million parameters; exit 2 is one more block and a linear layer on 14,400 values; the \
            final exit, after average pooling 6 (8×8 → 3×3), is linear 576 → 10. Stages: the first forwards \
            16×30×30 (14,400 values) after one block, the second the same shape after 18 more, the third runs \
            the 32- and 64-channel groups.
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

    /// A convolution that keeps the map's size (odd kernel, padded by half) and has no bias: the batch
    /// norm after it supplies the shift.
    static func biaslessConv(_ name: String, out: Int, kernel: Int = 3) -> LayerSpec {
        LayerSpec(op: "conv", name: name, out: out, kernel: kernel, pad: kernel / 2, bias: false)
    }

    /// A basic residual block of `channels` (conv · BN · ReLU · conv · BN, identity shortcut), then its ReLU.
    static func basicBlock(_ name: String, channels: Int) -> [LayerSpec] {
        [.residual(name, [biaslessConv("\(name).conv1", out: channels), .batchNorm("\(name).bn1", momentum: 0.1), .relu,
                          biaslessConv("\(name).conv2", out: channels), .batchNorm("\(name).bn2", momentum: 0.1)]), .relu]
    }

    /// Three stages built from residual blocks with batch norm, shaped for the tiers. The device runs
    /// two small convolutions and squeezes to a 2×14×14 map (392 values); its exit has a 64-unit
    /// hidden layer. The edge runs a 32-channel convolution and block at 7×7 and forwards 32×4×4;
    /// the cloud runs 96 channels: a convolution and two blocks at 4×4, then average pooling.
    public static let bResNet3 = ModelSpec(
        name: "b-resnet3", input: [1, 28, 28], classes: 10,
        stages: [
            StageSpec(name: "device", trunk: [
                biaslessConv("conv1", out: 8), .batchNorm("bn1", momentum: 0.1), .relu, .maxPool(2),
                biaslessConv("conv2", out: 8), .batchNorm("bn2", momentum: 0.1), .relu,
                biaslessConv("squeeze", out: 2, kernel: 1), .batchNorm("bn3", momentum: 0.1),
            ], exit: ExitSpec(name: "device-exit", layers: [.flatten, .linear("fc1", out: 64), .relu, .linear("fc2", out: 10)])),
            StageSpec(name: "edge", trunk: [
                biaslessConv("conv1", out: 32), .batchNorm("bn1", momentum: 0.1), .relu, .maxPool(2),
            ] + basicBlock("b1", channels: 32) + [.maxPool(2, ceil: true)],
            exit: ExitSpec(name: "edge-exit", layers: [.flatten, .linear("fc", out: 10)])),
            StageSpec(name: "cloud", trunk: [
                biaslessConv("conv1", out: 96), .batchNorm("bn1", momentum: 0.1), .relu,
            ] + basicBlock("b1", channels: 96) + basicBlock("b2", channels: 96) + [.avgPool(4)],
            exit: ExitSpec(name: "cloud-exit", layers: [.flatten, .linear("fc", out: 10)])),
        ])

    /// BranchyNet's local response normalisation (Chainer's form: α not divided by the window).
    static let paperLRN = LayerSpec.lrn(size: 3, alpha: 5e-5, beta: 0.75, k: 2)
    /// Max pooling 3, stride 2, rounding up (Chainer's default `cover_all`).
    static let paperPool = LayerSpec.maxPool(3, stride: 2, ceil: true)

    /// B-AlexNet as in BranchyNet's code: exit 1 after conv2, exit 2 after conv3, the final exit
    /// after the two hidden layers (dropout left out).
    public static let bAlexNet = ModelSpec(
        name: "b-alexnet", input: [3, 32, 32], classes: 10,
        stages: [
            StageSpec(name: "device", trunk: [
                .conv("conv1", out: 32, kernel: 5, pad: 2), .relu, paperPool, paperLRN,
                .conv("conv2", out: 64, kernel: 5, pad: 2),
            ], exit: ExitSpec(name: "exit1", layers: [
                .relu, paperPool, paperLRN, .conv("conv1", out: 32, kernel: 3, pad: 1), .relu,
                .conv("conv2", out: 32, kernel: 3, pad: 1), .relu, paperPool, .flatten, .linear("fc", out: 10),
            ])),
            StageSpec(name: "edge", trunk: [
                .relu, paperPool, paperLRN, .conv("conv3", out: 96, kernel: 3, pad: 1),
            ], exit: ExitSpec(name: "exit2", layers: [
                .relu, paperPool, paperLRN, .conv("conv1", out: 32, kernel: 3, pad: 1), .relu, paperPool, .flatten,
                .linear("fc", out: 10),
            ])),
            StageSpec(name: "cloud", trunk: [
                .relu, .conv("conv4", out: 96, kernel: 3, pad: 1), .relu, .conv("conv5", out: 64, kernel: 3, pad: 1), .relu,
                paperPool, .flatten, .linear("fc1", out: 256), .relu, .linear("fc2", out: 128), .relu,
            ], exit: ExitSpec(name: "final", layers: [.linear("fc", out: 10)])),
        ])

    /// BranchyNet's basic residual block `name` from `input` to `out` channels (with `stride`),
    /// followed by its ReLU: conv · BN · ReLU · conv · BN, plus the identity or, when the shape
    /// changes, the input subsampled and padded with zero channels in front.
    static func paperBlock(_ name: String, input: Int, out: Int, stride: Int = 1) -> [LayerSpec] {
        func bn(_ n: String) -> LayerSpec { LayerSpec(op: "batchnorm", name: n, epsilon: 2e-5, momentum: 0.1) }
        let body: [LayerSpec] = [
            .conv("\(name).conv1", out: out, kernel: 3, stride: stride, pad: 1), bn("\(name).bn1"), .relu,
            .conv("\(name).conv2", out: out, kernel: 3, pad: 1), bn("\(name).bn2"),
        ]
        var shortcut: [LayerSpec] = []
        if stride != 1 { shortcut.append(.avgPool(1, stride: stride)) }
        if out != input { shortcut.append(.padChannels(out: out)) }
        return [.residual(name, body, shortcut: shortcut.isEmpty ? nil : shortcut), .relu]
    }

    /// B-ResNet-110 as in BranchyNet's code: exit 1 after the first block, exit 2 after 18 more,
    /// the final exit after the 32- and 64-channel groups and average pooling.
    public static let bResNet110: ModelSpec = {
        let group2 = (1...18).flatMap { paperBlock("g2b\($0)", input: $0 == 1 ? 16 : 32, out: 32, stride: $0 == 1 ? 2 : 1) }
        let group3 = (1...18).flatMap { paperBlock("g3b\($0)", input: $0 == 1 ? 32 : 64, out: 64, stride: $0 == 1 ? 2 : 1) }
        return ModelSpec(
            name: "b-resnet110", input: [3, 32, 32], classes: 10,
            stages: [
                StageSpec(name: "device", trunk: [
                    .conv("conv1", out: 16, kernel: 3), LayerSpec(op: "batchnorm", name: "bn1", epsilon: 2e-5, momentum: 0.1), .relu,
                ] + paperBlock("g1b1", input: 16, out: 16),
                exit: ExitSpec(name: "exit1", layers: [
                    .relu, paperLRN, .conv("conv1", out: 32, kernel: 3, pad: 1), .relu, .conv("conv2", out: 32, kernel: 3, pad: 1), .relu,
                    paperPool, .flatten, .linear("fc1", out: 3600), .linear("fc2", out: 10),
                ])),
                StageSpec(name: "edge", trunk: (2...19).flatMap { paperBlock("g1b\($0)", input: 16, out: 16) },
                          exit: ExitSpec(name: "exit2", layers: paperBlock("block", input: 16, out: 16) + [.flatten, .linear("fc", out: 10)])),
                StageSpec(name: "cloud", trunk: group2 + group3 + [.avgPool(6, stride: 1)],
                          exit: ExitSpec(name: "final", layers: [.flatten, .linear("fc", out: 10)])),
            ])
    }()
}
