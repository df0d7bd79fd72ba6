#!/usr/bin/env python3
"""A small MobileNetV2-style early-exit network for Fashion-MNIST, trained with the
BranchyNet joint loss and exported to ONNX for Branchy (see README.md beside this file).

    device  stem Conv3x3 1->16, stride 2 + BN + ReLU6             14x14
            IR(16->16, expand 3)            + residual Add         14x14
            IR(16->16, expand 4, stride 2)                          7x7
            IR(16->16, expand 4)            + residual Add          7x7  -> 16x7x7 = 784 floats
      exit  Conv1x1 16->64 + BN + ReLU6, global average pool, flatten, Linear 64->10
    edge    IR(16->24, expand 4)                                    7x7
            IR(24->24, expand 4)            + residual Add          7x7  -> 24x7x7 = 1176 floats
      exit  Conv1x1 24->96 + BN + ReLU6, global average pool, flatten, Linear 96->10
    cloud   IR(24->48, expand 4, stride 2)                          4x4
            IR(48->48, expand 4)            + residual Add          4x4
            IR(48->48, expand 4)            + residual Add          4x4
            Conv1x1 48->192 + BN + ReLU6                            4x4
      exit  global average pool, flatten, Linear 192->10

IR = inverted residual: 1x1 expand conv + BN + ReLU6, 3x3 depthwise conv (groups = channels)
+ BN + ReLU6, 1x1 project conv + BN (linear bottleneck); the Add when stride 1 and the
channels match. Joint loss weights 1.0 (device), 0.5 (edge), 1.0 (cloud).

usage: mobilenet_exits.py [--out DIR] [--epochs N] [--seed S] [--held-out N] [--write-held-out DIR]
writes DIR/mobilenet-exits.onnx, DIR/mobilenet-exits-dynamo/model.onnx (+ model.onnx.data)
and DIR/mobilenet-final-only.onnx.
"""

import os
import sys

import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

WEIGHTS = (1.0, 0.5, 1.0)


def conv_bn(cin, cout, kernel, stride=1, groups=1, relu6=True):
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu6:
        layers.append(nn.ReLU6(inplace=True))
    return layers


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, expand, stride=1):
        super().__init__()
        hidden = cin * expand
        self.body = nn.Sequential(
            *conv_bn(cin, hidden, 1),                                # expand
            *conv_bn(hidden, hidden, 3, stride, groups=hidden),      # depthwise
            *conv_bn(hidden, cout, 1, relu6=False))                  # project (linear)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def head(cin, hidden=None, classes=10):
    layers = conv_bn(cin, hidden, 1) if hidden else []
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(hidden or cin, classes))


def build_model():
    device = nn.Sequential(
        *conv_bn(1, 16, 3, stride=2),
        InvertedResidual(16, 16, 3),
        InvertedResidual(16, 16, 4, stride=2),
        InvertedResidual(16, 16, 4))
    edge = nn.Sequential(
        InvertedResidual(16, 24, 4),
        InvertedResidual(24, 24, 4))
    cloud = nn.Sequential(
        InvertedResidual(24, 48, 4, stride=2),
        InvertedResidual(48, 48, 4),
        InvertedResidual(48, 48, 4),
        *conv_bn(48, 192, 1))
    return common.ThreeExitNet(device, head(16, 64), edge, head(24, 96), cloud, head(192))


if __name__ == "__main__":
    common.main(build_model, "mobilenet", __doc__.splitlines()[0], default_epochs=4, weights=WEIGHTS,
                final_only=True)
