#!/usr/bin/env bash
# Gradescope image set-up (runs once, as root, with network, when the autograder is uploaded).
# Base image: Ubuntu 22.04 with Python 3.10. Installs the pinned grading environment into a venv that every
# account can read, creates the unprivileged sandbox account, and makes this bundle private to root.
# Nothing is downloaded at grading time.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${HWGRADER_VENV:-/opt/hwgrader-venv}"
SANDBOX_USER="${HWGRADER_SANDBOX_USER:-hwsandbox}"   # run_autograder reads the same variable
TORCH_VERSION="2.13.0"
CPU_INDEX="https://download.pytorch.org/whl/cpu"   # CPU-only wheels: no multi-GB CUDA build
# HWGRADER_TORCH_INDEX: where torch comes from. Only for the emulation of Gradescope on a machine that cannot reach
# PyTorch's index (`make emulate-gradescope` gives PyPI, whose Linux torch is the CUDA build); never set on Gradescope.
TORCH_INDEX="${HWGRADER_TORCH_INDEX:-$CPU_INDEX}"

export DEBIAN_FRONTEND=noninteractive
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then
    apt-get update
    apt-get install -y --no-install-recommends python3-venv python3-pip
fi

python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip<26"
# First the complete pinned resolution (torch's dependencies included) from PyPI, then torch alone from the CPU
# index: its dependencies are already there, so nothing else comes from that index.
"$VENV/bin/python" -m pip install --quiet -r "$HERE/requirements.txt"
"$VENV/bin/python" -m pip install --quiet --index-url "$TORCH_INDEX" "torch==${TORCH_VERSION}"
"$VENV/bin/python" -m pip check || echo "setup.sh: warning: pip check reports the inconsistencies above" >&2
chmod -R a+rX "$VENV"

bash "$HERE/create_sandbox_user.sh" "$SANDBOX_USER"

# The bundle holds the hidden suites, their goldens and the hidden test labels: root only.
chown -R root:root "$HERE"
chmod 0700 "$HERE"
# The secret the hidden checks' seeds derive from (seeds.py): made once per image, readable by root only, never in
# the zip and never given to the sandbox. Kept across re-runs so that a regrade draws the same hidden inputs.
if [ ! -s "$HERE/grading_key" ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$HERE/grading_key" && echo >> "$HERE/grading_key")
fi
chmod 0600 "$HERE/grading_key"

cd /
# Smoke test: the child's real start-up, as in every grading (the sandbox account, the grader's resource limits,
# Landlock, no internet, threads and processes refused), then every import the master notebooks make and a figure.
# The CUDA build of torch, for one, does not import under the address-space limit; matplotlib 3.10 on Python 3.10
# starts a thread while it builds its font list (the child imports the libraries before it refuses threads).
# (HWGRADER_ALLOW_CUDA_TORCH=1, set by `make emulate-gradescope` only and never on Gradescope, reaches the check
# through the environment and raises its memory limits for the CUDA build.)
if ! (cd "$HERE/grader" && "$VENV/bin/python" -E -s -m assignkit.grading.startup --bundle "$HERE" --user "$SANDBOX_USER" \
        --python "$VENV/bin/python"); then
    echo "setup.sh: a sandboxed child cannot start what the notebooks import (see above). If torch is the CUDA build:" >&2
    echo "it cannot be imported under the grader's memory limits: install the CPU wheel (torch==${TORCH_VERSION} from" >&2
    echo "${CPU_INDEX})." >&2
    exit 1
fi
"$VENV/bin/python" -I -c "import sys; sys.path.insert(0, '$HERE/grader'); import assignkit.grading.gradescope"
"$VENV/bin/python" -I -c "import torch; print('setup.sh: torch', torch.__version__)"
echo "setup.sh: done"
