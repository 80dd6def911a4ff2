#!/usr/bin/env bash
# Gradescope image set-up (runs once, as root, with network, when the autograder is uploaded).
# Base image: Ubuntu 22.04 with Python 3.10. Installs the pinned grading environment into a venv that every
# account can read, creates the unprivileged sandbox account, and makes this bundle private to root.
# Nothing is downloaded at grading time.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${HWGRADER_VENV:-/opt/hwgrader-venv}"
TORCH_VERSION="2.13.0"
TORCH_INDEX="https://download.pytorch.org/whl/cpu"   # CPU-only wheels: no multi-GB CUDA build

export DEBIAN_FRONTEND=noninteractive
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then
    apt-get update
    apt-get install -y --no-install-recommends python3-venv python3-pip
fi

python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip<26"
"$VENV/bin/python" -m pip install --quiet --index-url "$TORCH_INDEX" "torch==${TORCH_VERSION}"
"$VENV/bin/python" -m pip install --quiet -r "$HERE/requirements.txt"
chmod -R a+rX "$VENV"

bash "$HERE/create_sandbox_user.sh" hwsandbox

# The bundle holds the hidden suites, their goldens and the hidden test labels: root only.
chown -R root:root "$HERE"
chmod 0700 "$HERE"

cd /
# Smoke test: the sandbox account can start the interpreter and import what notebooks need.
runuser -u hwsandbox -- "$VENV/bin/python" -I -c "import torch, numpy, IPython, matplotlib; print('torch', torch.__version__)"
"$VENV/bin/python" -I -c "import sys; sys.path.insert(0, '$HERE/grader'); import assignkit.grading.gradescope"
echo "setup.sh: done"
