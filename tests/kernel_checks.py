"""The README's quoted outputs checked under each x86 OpenBLAS kernel, in subprocesses started
when the suite is collected (conftest.py) so that they run beside the rest of the suite; the
test in test_readme.py waits for their verdicts at its turn."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORETYPES = ("Haswell", "Sandybridge", "Prescott")
TEST_NAME = "test_the_quoted_outputs_hold_under_every_x86_blas_kernel"

CORETYPE_PROBE = """\
import ctypes, numpy
numpy.ones((2, 2)) @ numpy.ones((2, 2))
for path in {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.lower()}:
    for name in ("openblas_get_corename", "openblas_get_corename64_", "scipy_openblas_get_corename64_"):
        function = getattr(ctypes.CDLL(path), name, None)
        if function is not None:
            function.restype = ctypes.c_char_p
            print(function().decode())
"""

_started: dict = {}


def kernel_under(coretype=None):
    """The OpenBLAS kernel numpy runs with OPENBLAS_CORETYPE=coretype ('' if none is found)."""
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_CORETYPE"}
    env |= {"OPENBLAS_CORETYPE": coretype} if coretype else {}
    probe = subprocess.run([sys.executable, "-c", CORETYPE_PROBE], capture_output=True, text=True, env=env)
    return probe.stdout.strip().splitlines()[-1] if probe.returncode == 0 and probe.stdout.strip() else ""


def started():
    """{coretype: (the running README check, the file it prints to), or why it is skipped},
    started once (each single-threaded)."""
    if _started:
        return _started
    default = kernel_under()
    for coretype in CORETYPES:
        kernel = kernel_under(coretype)
        if not kernel:
            _started[coretype] = "numpy's BLAS here is not an OpenBLAS that says which kernel it runs"
        elif kernel == default:  # on ARM, or the CPU's own kernel: the in-process test is this one
            _started[coretype] = f"OPENBLAS_CORETYPE={coretype} has no effect here: numpy runs {default} with or without it"
        else:
            env = {**os.environ, "OPENBLAS_CORETYPE": coretype, "OPENBLAS_NUM_THREADS": "1"}
            printed = tempfile.TemporaryFile("w+")  # (a pipe could fill and stall the check)
            _started[coretype] = (subprocess.Popen([sys.executable, "docs/update_readme.py", "--check"],
                                                   cwd=ROOT, stdout=printed, stderr=subprocess.STDOUT,
                                                   text=True, env=env), printed)
    return _started


def verdict(coretype):
    """(returncode, what the check printed), or the reason it is skipped (a str)."""
    check = started()[coretype]
    if isinstance(check, str):
        return check
    process, printed = check
    process.wait()
    printed.seek(0)
    return process.returncode, printed.read()


def stop():
    for check in _started.values():
        if not isinstance(check, str):
            if check[0].poll() is None:
                check[0].kill()
                check[0].wait()
            check[1].close()
    _started.clear()
