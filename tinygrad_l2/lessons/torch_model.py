"""The PyTorch side of `explain --model`: a torch.export `.pt2` file or a `module:attribute`
spec as a tl model and a synthetic batch; every failure a ModelError with one line (the CLI
prints it and exits 2).  torch is imported only when one of these runs."""
import importlib
import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np


class ModelError(Exception):
    """The --model file or spec can't be read or converted (a one-line error, exit status 2)."""


def _first_line(err):
    return (str(err).strip().splitlines() or [""])[0]


def _torch():
    try:
        import torch
    except ImportError as err:
        raise ModelError(f"a PyTorch --model needs PyTorch: pip install 'tinygrad-l2[interop]' "
                         f"({err})") from None
    return torch


def load(spec, input_shape, m, seed):
    """(tl model, standard normal batch, how the model was found, the generator for the labels)."""
    from ..interop import torch_export, torch_import
    torch = _torch()
    rng = np.random.default_rng(seed)
    X = np.zeros(0)
    try:
        if Path(spec).suffix == ".pt2":
            program = _program(torch, spec)
            model = torch_export.from_exported(program)  # refuses all but one tensor input
            example = program.example_inputs[0][0]
            X = rng.standard_normal(tuple(example.shape)).astype(str(example.dtype).replace("torch.", ""))
            return model, X, "a torch.export program (its ATen graph)", rng
        module, source = _module(torch, spec)
        shape = _input_shape((module, source), input_shape, spec)
        dtype = next((p.dtype for p in module.parameters()), torch.float32)
        X = rng.standard_normal((m,) + shape).astype(str(dtype).replace("torch.", ""))
        model = torch_import.from_torch(module, torch.from_numpy(X))
        return model, X, f"a PyTorch {type(module).__name__}", rng
    except (ValueError, TypeError) as err:  # the conversion's own one-line reasons
        raise ModelError(f"--model {spec}: {_first_line(err)}") from None
    except RuntimeError as err:  # torch itself, running the user's forward on the batch
        raise ModelError(f"--model {spec}: running it on a batch of shape {X.shape} raised "
                         f"RuntimeError: {_first_line(err)}") from None


def _program(torch, path):
    if not Path(path).is_file():
        raise ModelError(f"--model {path}: no such file")
    try:
        return torch.export.load(path)
    except Exception as err:  # a file torch.export.save did not write
        raise ModelError(f"--model {path}: not a torch.export program "
                         f"({type(err).__name__}: {_first_line(err)})") from None


def _module(torch, spec):
    """(the torch.nn.Module a `module:attribute` spec names, calling a zero-argument factory;
    the Python module it came from)."""
    where, _, attribute = spec.rpartition(":")
    if not where or not attribute.isidentifier():
        raise ModelError(f"--model {spec}: expected a .keras file, a .pt2 file (torch.export.save) "
                         f"or module:attribute (e.g. my_net.py:model or my_package.nets:make_model)")
    python_module = _import(where, spec)
    if not hasattr(python_module, attribute):
        raise ModelError(f"--model {spec}: {where} has no attribute {attribute!r}")
    value = getattr(python_module, attribute)
    if callable(value) and not isinstance(value, torch.nn.Module):
        try:
            value = value()
        except Exception as err:
            raise ModelError(f"--model {spec}: calling {attribute}() raised {type(err).__name__}: "
                             f"{_first_line(err)}") from None
    if not isinstance(value, torch.nn.Module):
        raise ModelError(f"--model {spec}: {attribute} is a {type(value).__name__}, expected a "
                         f"torch.nn.Module or a zero-argument function returning one")
    return value, python_module


@contextmanager
def _on_path(folder):
    """`folder` first on sys.path while the user's module imports (its sibling imports work)."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))


def _import(where, spec):
    """A .py file by path, or a dotted module name importable from the current directory."""
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise ModelError(f"--model {spec}: no such file {where}")
            with _on_path(path.resolve().parent):
                found = importlib.util.spec_from_file_location(path.stem, path)
                module = importlib.util.module_from_spec(found)
                found.loader.exec_module(module)
                return module
        with _on_path(Path.cwd()):
            return importlib.import_module(where)
    except ModelError:
        raise
    except (Exception, SystemExit) as err:  # the user's code: its error, in one line
        raise ModelError(f"--model {spec}: importing {where} raised {type(err).__name__}: "
                         f"{_first_line(err)}") from None


def _input_shape(owners, given, spec):
    """One example's shape: --input-shape, else an `input_shape` attribute of the nn.Module,
    else one of the Python module that defines it."""
    shape = given
    for owner in owners:
        shape = getattr(owner, "input_shape", None) if shape is None else shape
    if shape is None:
        raise ModelError(f"--model {spec}: one example's shape is needed: give --input-shape "
                         f"(e.g. --input-shape 1,28,28), or an input_shape attribute on the model "
                         f"or in its file")
    try:
        shape = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise ModelError(f"--model {spec}: the module's input_shape {shape!r} is not a tuple of "
                         f"sizes") from None
    if not shape or min(shape) < 1:
        raise ModelError(f"--model {spec}: input shape {shape} must be positive sizes")
    return shape


def decay_every_parameter(model, weight_decay):
    """weight_decay wd on every parameter as tl.nn.L2(wd/2) (torch_import's conversion)."""
    from ..interop import torch_import
    if weight_decay:
        torch_import.weight_decay_as_l2(model, [name for name, _ in model.named_parameters()],
                                        weight_decay)
