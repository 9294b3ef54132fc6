"""The distributions hold what they promise: the sdist everything its tests need (they pass
from an unpacked sdist), the wheel the package with py.typed and the licence."""
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("build")
ROOT = Path(__file__).resolve().parent.parent


def clean_copy(out):
    """The tracked files of the checkout, copied: no build leftovers (an egg-info's SOURCES.txt
    would add files to the sdist that MANIFEST.in does not)."""
    for name in tracked():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, out / name)
    return out


def build(kind, out):
    """`python -m build --sdist|--wheel` of a clean copy; without isolation when this setuptools
    is new enough for the licence field (no download), else in pip's isolated environment."""
    source = clean_copy(out / "source")
    major = int(importlib.metadata.version("setuptools").split(".")[0])
    isolation = ["--no-isolation"] if major >= 77 else []
    subprocess.run([sys.executable, "-m", "build", f"--{kind}", *isolation, "--outdir", str(out), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)
    (path,) = out.glob("*.tar.gz" if kind == "sdist" else "*.whl")
    return path


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    return build("sdist", tmp_path_factory.mktemp("sdist"))


def tracked(*folders):
    result = subprocess.run(["git", "ls-files", *folders], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("not a git checkout: nothing to compare the sdist with")
    return {line for line in result.stdout.splitlines() if (ROOT / line).exists()}


def test_the_sdist_holds_the_licence_the_marker_and_every_tracked_test_example_and_benchmark(sdist):
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", "tinygrad_l2/py.typed"} <= names
    missing = tracked("tests", "examples", "benchmarks", "docs", "tinygrad_l2") - names
    assert not missing, sorted(missing)


def test_tests_pass_from_the_unpacked_sdist(sdist, tmp_path):
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (unpacked,) = tmp_path.iterdir()
    env = dict(os.environ, PYTHONPATH=str(unpacked))
    where = subprocess.run([sys.executable, "-c", "import tinygrad_l2; print(tinygrad_l2.__file__)"],
                           cwd=unpacked, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(unpacked))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_layering.py", "tests/test_gradcheck.py", "tests/lessons/test_compare.py"],
                            cwd=unpacked, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_the_wheel_holds_the_package_py_typed_and_the_licence(tmp_path):
    with zipfile.ZipFile(build("wheel", tmp_path)) as wheel:
        names = set(wheel.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = wheel.read(metadata).decode()
    assert "tinygrad_l2/py.typed" in names and "tinygrad_l2/lessons/cli.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in text
    assert not any(n.startswith("tests/") for n in names)
