"""`tinygrad-l2 explain --model` for a learner's PyTorch model: a torch.export .pt2 file or a
module:attribute spec, its L2 given as --weight-decay; bad input is one line, exit status 2."""
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from interop.frameworks import need_torch
from tinygrad_l2.lessons.cli import main

torch = need_torch()

NET = textwrap.dedent('''
    import torch
    from torch import nn
    import torch.nn.functional as F


    class Net(nn.Module):
        input_shape = (1, 6, 6)

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.bn = nn.BatchNorm2d(2)
            self.fc = nn.Linear(18, 3)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
            return self.fc(torch.flatten(x, 1))


    torch.manual_seed(0)
    model = Net().eval()


    def make_mlp():
        return nn.Sequential(nn.Flatten(), nn.Linear(36, 4), nn.Tanh(), nn.Linear(4, 3))


    def make_gelu():
        return nn.Sequential(nn.Flatten(), nn.GELU())
''')


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder with the learner's my_net.py, a package nets/ with it, and net.pt2 exported."""
    folder = tmp_path_factory.mktemp("mine")
    (folder / "my_net.py").write_text(NET)
    (folder / "shaped.py").write_text(NET + "\nmlp = make_mlp()\ninput_shape = (1, 6, 6)  # the file's own\n")
    (folder / "nets").mkdir()
    (folder / "nets" / "__init__.py").write_text("")
    (folder / "nets" / "small.py").write_text(NET)
    (folder / "broken.py").write_text("import torch\nraise RuntimeError('the learner\\'s bug')\n")
    namespace = {}
    exec(compile(NET, "my_net.py", "exec"), namespace)
    for name, module in (("net", namespace["model"]), ("gelu", namespace["make_gelu"]().eval())):
        program = torch.export.export(module, (torch.randn(4, 1, 6, 6),))
        torch.export.save(program, folder / f"{name}.pt2")
    program = torch.export.export(namespace["Net"]().train(), (torch.randn(4, 1, 6, 6),))
    torch.export.save(program, folder / "training.pt2")
    return folder


def run(argv, capsys):
    """(exit status, stdout, stderr) of the command, in process."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def test_a_pt2_file_shows_weight_decay_reaching_every_parameter(folder, capsys):
    status, out, _ = run(["explain", "--model", str(folder / "net.pt2"), "--weight-decay", "0.004",
                          "--out", str(folder / "out")], capsys)
    assert status == 0
    assert "aten.batch_norm.default" in out and "4 inputs of shape (1, 6, 6)" in out
    assert "weight_decay = 0.004" in out and "tl.nn.L2(0.002) each" in out
    assert "L2 reaches only: conv.weight, conv.bias, bn.weight, bn.bias, fc.weight, fc.bias\n" in out
    assert "∂(L2)/∂fc.weight = 0.004·fc.weight" in out and "∂(L2)/∂conv.bias = 0.004·conv.bias" in out
    ET.parse(folder / "out" / "model_graph.svg")


@pytest.mark.parametrize("spec, extra", [("my_net.py:model", []), ("shaped.py:mlp", []),
                                         ("nets.small:make_mlp", ["--input-shape", "1,6,6"])])
def test_a_module_attribute_spec_is_imported_and_explained(spec, extra, folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)  # a dotted module is imported from the current directory
    status, out, _ = run(["explain", "--model", spec, "--weight-decay", "0.01", "--m", "5",
                          "--out", str(folder / "out"), *extra], capsys)
    assert status == 0
    assert "5 inputs of shape (1, 6, 6)" in out
    reached = out.split("L2 reaches only: ")[1].splitlines()[0].split(", ")
    assert reached and all(name.endswith(("weight", "bias")) for name in reached)
    assert f"∂(L2)/∂{reached[0]} = 0.01·{reached[0]}" in out


def test_weight_decay_zero_leaves_no_l2(folder, capsys):
    status, out, _ = run(["explain", "--model", str(folder / "net.pt2"), "--weight-decay", "0",
                          "--out", str(folder / "out")], capsys)
    assert status == 0 and "L2 reaches only: nothing (no regularizer)" in out


@pytest.mark.parametrize("argv, message", [
    (["--model", "{}/missing.pt2", "--weight-decay", "1"], "missing.pt2: no such file"),
    (["--model", "{}/my_net.py", "--weight-decay", "1"], "expected a .keras file, a .pt2 file"),
    (["--model", "{}/my_net.py:nothing", "--weight-decay", "1"], "my_net.py has no attribute 'nothing'"),
    (["--model", "{}/broken.py:model", "--weight-decay", "1"], "importing .*broken.py raised RuntimeError: the learner's bug"),
    (["--model", "no_such_package.nets:model", "--weight-decay", "1"], "No module named 'no_such_package'"),
    (["--model", "{}/my_net.py:make_mlp", "--weight-decay", "1"], "one example's shape is needed: give --input-shape"),
    (["--model", "{}/my_net.py:make_mlp", "--weight-decay", "1", "--input-shape", "2,6,6"],
     r"batch of shape \(200, 2, 6, 6\) raised RuntimeError: mat1 and mat2"),
    (["--model", "{}/gelu.pt2", "--weight-decay", "1"], "the op aten.gelu.default .* has no tl counterpart"),
    (["--model", "{}/training.pt2", "--weight-decay", "1"], "exported in training mode"),
    (["--model", "{}/net.pt2"], "has no regularizer: give its optimizer's --weight-decay"),
    (["--model", "{}/net.pt2", "--weight-decay", "1", "--m", "8"], "--m does not apply with a .pt2 model"),
    (["--model", "{}/m.keras", "--weight-decay", "1"], "--weight-decay does not apply with a .keras model"),
    (["--weight-decay", "1"], "--weight-decay applies with --model only"),
])
def test_bad_input_is_a_one_line_error_with_exit_status_2(argv, message, folder, capsys):
    argv = [arg.format(folder) for arg in argv]
    status, _, err = run(["explain", *argv, "--out", str(folder / "out")], capsys)
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err


def test_the_installed_command_reports_a_broken_module_without_a_traceback(folder):
    done = subprocess.run([sys.executable, "-m", "tinygrad_l2.lessons.cli", "explain", "--model",
                           "broken.py:model", "--weight-decay", "1"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("tinygrad-l2 explain: error: --model broken.py:model: importing "
                                   "broken.py raised RuntimeError: the learner's bug")
