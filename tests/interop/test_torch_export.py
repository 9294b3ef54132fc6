"""tl.from_torch of a torch.export program saved to a .pt2 file and loaded back: its ATen graph
replayed in tl gives torch autograd's loss and gradients (float64 1e-10, float32 1e-5); an
ATen op without a tl counterpart is refused by name."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from interop.frameworks import assert_close, need_torch, tl_terms, torch_grads

torch = need_torch()
T, F = torch.nn, torch.nn.functional


class ExportNet(T.Module):
    """Conv, batch norm, pooling, a flatten, dropout, a scaled head, log-softmax: the ATen ops
    a small classifier exports to."""

    def __init__(self):
        super().__init__()
        self.conv = T.Conv2d(1, 3, 3, padding=1)
        self.bn = T.BatchNorm2d(3)
        self.head = T.Sequential(T.Linear(48, 6), T.Tanh(), T.Linear(6, 4))

    def forward(self, x):
        x = F.avg_pool2d(F.relu(self.bn(self.conv(x))), 2)
        x = F.dropout(torch.flatten(x, 1), 0.2, self.training)
        return F.log_softmax(self.head(x) * 2.0 - 1.0, dim=1)


def exported(module, example, path):
    """torch.export.export -> .pt2 file -> torch.export.load."""
    torch.export.save(torch.export.export(module, (example,)), path)
    return torch.export.load(path)


@pytest.fixture(scope="module", params=["float32", "float64"])
def saved_program(request, tmp_path_factory):
    """(module, its exported program loaded back from a .pt2 file, the example input)."""
    dtype = getattr(torch, request.param)
    torch.manual_seed(0)
    module = ExportNet().to(dtype)
    X = torch.randn(5, 1, 8, 8, dtype=dtype)
    module(X * 2 + 1)  # batch statistics away from 0 and 1
    module.eval()
    return module, exported(module, X, tmp_path_factory.mktemp("pt2") / "net.pt2"), X


def test_an_exported_program_gives_torch_loss_and_gradients(saved_program):
    module, program, X = saved_program
    model = tl.from_torch(program)
    y = np.array([0, 1, 2, 3, 1])
    data = F.nll_loss(module(X), torch.tensor(y))
    params = dict(module.named_parameters())
    t_data, _, t_grads = tl_terms(model, X.numpy(), lambda z: -(z[np.arange(5), y]).mean())
    assert_close(np.array(t_data, X.numpy().dtype), np.array(data.item(), X.numpy().dtype), "data loss")
    assert list(t_grads) == list(params)  # the source's names, in the source's order
    for (name, _), g in zip(params.items(), torch_grads(torch, data, list(params.values()))):
        assert_close(t_grads[name][0], g, f"{name} data gradient")
    assert "aten.batch_norm.default" in model.code()


def test_an_unsupported_aten_op_is_refused_by_name(tmp_path):
    class Gelu(T.Module):
        def forward(self, x):
            return F.gelu(x)
    program = exported(Gelu(), torch.randn(2, 3), tmp_path / "gelu.pt2")
    with pytest.raises(ValueError, match=r"the op aten.gelu.default \(in .*\) has no tl counterpart"):
        tl.from_torch(program)


def test_a_program_exported_in_training_mode_is_refused(tmp_path):
    program = exported(T.Sequential(T.Linear(3, 3), T.Dropout(0.5)), torch.randn(2, 3), tmp_path / "train.pt2")
    with pytest.raises(ValueError, match=r"exported in training mode \(aten.dropout.default .*module.eval\(\)"):
        tl.from_torch(program)
