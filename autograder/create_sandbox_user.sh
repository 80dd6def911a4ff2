#!/usr/bin/env bash
# Create the unprivileged account student code runs as (idempotent). Used by setup.sh on Gradescope and by
# the end-to-end test, so both set the sandbox up the same way.
#
#   create_sandbox_user.sh [NAME]     (default NAME: hwsandbox; must run as root)
#
# The account has no password, no login shell and no home of its own: the grader gives every sandboxed run
# a fresh scratch folder as HOME. It is in no group but its own, so it cannot read the bundle (0700 root).
set -euo pipefail

NAME="${1:-hwsandbox}"

if [ "$(id -u)" -ne 0 ]; then
    echo "create_sandbox_user.sh: must run as root" >&2
    exit 1
fi

if id -u "$NAME" >/dev/null 2>&1; then
    if [ "$(id -u "$NAME")" -eq 0 ]; then
        echo "create_sandbox_user.sh: $NAME is root; refusing to use it as the sandbox account" >&2
        exit 1
    fi
    echo "sandbox user $NAME exists (uid $(id -u "$NAME"))"
    exit 0
fi

NOLOGIN="$(command -v nologin || echo /usr/sbin/nologin)"
if command -v useradd >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell "$NOLOGIN" "$NAME"
else
    adduser --system --group --no-create-home --home /nonexistent --shell "$NOLOGIN" "$NAME"
fi
echo "created sandbox user $NAME (uid $(id -u "$NAME"))"
