"""What the Python scripts run: the Python modules they need and the branchy executable.

Shared by scripts/export-onnx.py, scripts/import-check.py and scripts/onnx-agreement.py
(standard library only, so that it loads before the modules it looks for):

  - python_with_modules: re-runs the script with run/venv's Python (as scripts/bench-compare.sh
    sets it up) when the running one lacks a module, else exits saying how to get it;
  - branchy_binary: BIN_DIR/branchy, else $BRANCHY_BIN/branchy, else built by scripts/build.sh.
"""

import importlib
import os
import subprocess
import sys

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(SCRIPTS)


def python_with_modules(program, modules):
    """Returns when every module in `modules` imports; else re-executes the script with
    run/venv/bin/python if there is one (and it is not the running Python), else exits."""
    try:
        for name in modules:
            importlib.import_module(name)
        return
    except ImportError as e:
        missing = e.name
    venv = os.path.join(REPO_ROOT, "run", "venv")
    venv_python = os.path.join(venv, "bin", "python")
    if os.path.exists(venv_python) and os.path.realpath(sys.prefix) != os.path.realpath(venv):
        os.execv(venv_python, [venv_python] + sys.argv)
    sys.exit(f"{program}: the Python module '{missing}' is missing; run scripts/bench-compare.sh once "
             f"(it sets up run/venv), or: python3 -m venv run/venv && run/venv/bin/pip install numpy onnx onnxruntime")


def branchy_binary(bin_dir, program):
    """The path of the branchy executable: BIN_DIR/branchy, else $BRANCHY_BIN/branchy, else
    the one scripts/build.sh builds. Exits with a message naming `program` when there is none."""
    bin_dir = bin_dir or os.environ.get("BRANCHY_BIN")
    if not bin_dir:
        print(f"{program}: building branchy (scripts/build.sh)", file=sys.stderr)
        done = subprocess.run([os.path.join(SCRIPTS, "build.sh")], stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"{program}: the build failed")
        bin_dir = done.stdout.strip().splitlines()[-1]
    path = os.path.join(bin_dir, "branchy")
    if not os.access(path, os.X_OK):
        sys.exit(f"{program}: no executable {path}")
    return path
