"""The package type-checks clean with mypy, and a user's code written against the public API
type-checks too (so the annotations are usable, not just present)."""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")
ROOT = Path(__file__).resolve().parent.parent


def mypy(*args, cache):
    return subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_package_type_checks_clean(tmp_path_factory):
    result = mypy("tinygrad_l2", cache=tmp_path_factory.getbasetemp() / "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_user_code_against_the_public_api_type_checks(tmp_path_factory):
    """Under the project's mypy settings, so the package's cache from the check above is reused;
    the strict flags for the user's module are inline in it (its first line)."""
    result = mypy("tests/typecheck/usage.py", cache=tmp_path_factory.getbasetemp() / "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_usage_file_asks_for_the_strict_flags():
    first = (ROOT / "tests" / "typecheck" / "usage.py").read_text().splitlines()[0]
    assert {"disallow-untyped-calls", "warn-return-any", "disallow-untyped-defs"} <= {
        flag.strip() for flag in first.removeprefix("# mypy:").split(",")}, first


def test_the_usage_file_runs():
    namespace: dict = {}
    exec(compile((ROOT / "tests" / "typecheck" / "usage.py").read_text(), "usage.py", "exec"), namespace)
    assert namespace["tensor_math"]() == (8, 2)
    assert "def step(" in namespace["compiled"]()
    assert namespace["traced"]()[0] == "W"
    assert isinstance(namespace["train_steps"](3), float)


def test_the_package_ships_its_py_typed_marker():
    assert (ROOT / "tinygrad_l2" / "py.typed").exists()


def _public_callables():
    import inspect
    import tinygrad_l2 as tl
    from tinygrad_l2.optim import lr_scheduler
    spaces = [tl, tl.nn, tl.nn.functional, tl.optim, lr_scheduler, tl.data, tl.conventions]
    seen = {}
    for space in spaces:
        for name in getattr(space, "__all__", [n for n in vars(space) if not n.startswith("_")]):
            value = getattr(space, name, None)
            if inspect.isfunction(value) and value.__module__.startswith("tinygrad_l2"):
                seen[f"{value.__module__}.{value.__qualname__}"] = value
            elif inspect.isclass(value) and value.__module__.startswith("tinygrad_l2"):
                for attr, member in vars(value).items():
                    function = member.fget if isinstance(member, property) else member
                    if inspect.isfunction(function) and (not attr.startswith("_") or attr in (
                            "__init__", "__call__", "__getitem__", "__len__", "__iter__")):
                        seen[f"{value.__module__}.{function.__qualname__}"] = function
    return seen


def test_every_public_function_and_method_is_annotated():
    import inspect
    missing = []
    for name, function in _public_callables().items():
        signature = inspect.signature(function)
        unannotated = [p for p in signature.parameters.values()
                       if p.annotation is inspect.Parameter.empty and p.name not in ("self", "cls")]
        if unannotated or signature.return_annotation is inspect.Signature.empty:
            missing.append(name)
    assert len(_public_callables()) > 150
    assert not missing, missing
