#!/usr/bin/env python3
"""A small ResNet-style early-exit network for Fashion-MNIST, trained with the BranchyNet
joint loss and exported to ONNX for Branchy (see README.md beside this file).

    device  Conv3x3 1->16 + BN + ReLU                              28x28
            MaxPool 2                                              14x14
            Basic(16->16)           identity shortcut              14x14
            Basic(16->16, stride 2) 1x1 stride-2 projection         7x7  -> 16x7x7 = 784 floats
      exit  AvgPool(kernel 3, stride 2) -> 16x3x3, flatten, Linear 144->10
    edge    Conv3x3 16->24 + BN + ReLU                              7x7
            Basic(24->24)           identity shortcut               7x7  -> 24x7x7 = 1176 floats
      exit  AvgPool(kernel 3, stride 2) -> 24x3x3, flatten, Linear 216->10
    cloud   Conv3x3 24->48 + BN + ReLU                              7x7
            Basic(48->48)           identity shortcut               7x7
            Basic(48->48)           identity shortcut               7x7
      exit  AvgPool(kernel 3, stride 2) -> 48x3x3, flatten, Linear 432->10

Basic = Conv3x3 + BN + ReLU, Conv3x3 + BN, Add of the shortcut, ReLU after the Add.
The 7x7 maps are pooled with a 3x3 window at stride 2 (3x3 outputs covering every row and
column); a 2x2 window would drop the 7th row and column. Joint loss weights 1.0, 0.5, 1.0.

usage: resnet_exits.py [--out DIR] [--epochs N] [--seed S] [--held-out N] [--write-held-out DIR]
writes DIR/resnet-exits.onnx and DIR/resnet-exits-dynamo/model.onnx (+ model.onnx.data).
"""

import os
import sys

import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

WEIGHTS = (1.0, 0.5, 1.0)


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def head(channels, classes=10):
    # 7x7 -> 3x3
    return nn.Sequential(nn.AvgPool2d(kernel_size=3, stride=2), nn.Flatten(), nn.Linear(channels * 9, classes))


def build_model():
    device = nn.Sequential(
        *conv_bn_relu(1, 16),
        nn.MaxPool2d(2),
        BasicBlock(16, 16),
        BasicBlock(16, 16, stride=2))
    edge = nn.Sequential(
        *conv_bn_relu(16, 24),
        BasicBlock(24, 24))
    cloud = nn.Sequential(
        *conv_bn_relu(24, 48),
        BasicBlock(48, 48),
        BasicBlock(48, 48))
    return common.ThreeExitNet(device, head(16), edge, head(24), cloud, head(48))


if __name__ == "__main__":
    common.main(build_model, "resnet", __doc__.splitlines()[0], default_epochs=5, weights=WEIGHTS)
