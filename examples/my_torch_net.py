"""A learner's own PyTorch model, as `tinygrad-l2 explain --model` reads one:

    tinygrad-l2 explain --model examples/my_torch_net.py:model --weight-decay 5e-4

`model` is a torch.nn.Module (a zero-argument function returning one works too); its
`input_shape` attribute is one example's shape (else pass --input-shape 1,8,8).  To explain the
same network as a torch.export program instead:

    python examples/my_torch_net.py net.pt2
    tinygrad-l2 explain --model net.pt2 --weight-decay 5e-4
"""
import sys

import torch
import torch.nn.functional as F
from torch import nn


class SmallConvNet(nn.Module):
    """conv → batch norm → ReLU → max-pool → linear, written as a custom forward."""
    input_shape = (1, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(torch.flatten(x, 1))


torch.manual_seed(0)
model = SmallConvNet().double().eval()

if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "net.pt2"
    example = torch.randn(16, *model.input_shape, dtype=torch.float64)  # fixes the batch's shape
    torch.export.save(torch.export.export(model, (example,)), path)
    print(f"wrote {path}: tinygrad-l2 explain --model {path} --weight-decay 5e-4")
