#!/usr/bin/env bash
# Create the unprivileged accounts student code runs as (idempotent). Used by setup.sh on Gradescope, by local
# parallel grading (one account per worker) and by the tests, so all set the sandbox up the same way.
#
#   create_sandbox_user.sh [NAME ...]                    (default NAME: hwsandbox)
#   create_sandbox_user.sh --count N [--base NAME]       NAME, NAME2 ... NAMEN: the accounts of `grade -j N`
#   create_sandbox_user.sh --dry-run ...                 print the names, create nothing
#
# Must run as root. Each account has no password, no login shell and no home of its own: the grader gives every
# sandboxed run a fresh scratch folder as HOME. It is in no group but its own, so it cannot read the bundle
# (0700 root) nor another account's files. An existing account is kept, unless it is root (refused).
set -euo pipefail

usage() {
    sed -n '5,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

BASE="hwsandbox"
COUNT=""
DRY_RUN=0
NAMES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --count) [ $# -ge 2 ] || usage; COUNT="$2"; shift 2 ;;
        --count=*) COUNT="${1#--count=}"; shift ;;
        --base) [ $# -ge 2 ] || usage; BASE="$2"; shift 2 ;;
        --base=*) BASE="${1#--base=}"; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage ;;
        -*) echo "create_sandbox_user.sh: unknown option $1" >&2; usage ;;
        *) NAMES+=("$1"); shift ;;
    esac
done

if [ -n "$COUNT" ]; then
    if ! [[ "$COUNT" =~ ^[0-9]+$ ]] || [ "$COUNT" -lt 1 ] || [ "$COUNT" -gt 256 ]; then
        echo "create_sandbox_user.sh: --count needs a number from 1 to 256, not '$COUNT'" >&2
        exit 2
    fi
    NAMES+=("$BASE")
    for ((k = 2; k <= COUNT; k++)); do
        NAMES+=("$BASE$k")
    done
fi
if [ ${#NAMES[@]} -eq 0 ]; then
    NAMES=("$BASE")
fi

for NAME in "${NAMES[@]}"; do
    if ! [[ "$NAME" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]]; then
        echo "create_sandbox_user.sh: '$NAME' is not a valid account name (lower-case letters, digits, _ and -; at most 32)" >&2
        exit 2
    fi
done

if [ "$DRY_RUN" -eq 1 ]; then
    printf '%s\n' "${NAMES[@]}"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "create_sandbox_user.sh: must run as root" >&2
    exit 1
fi

# Refuse root before creating anything.
for NAME in "${NAMES[@]}"; do
    if id -u "$NAME" >/dev/null 2>&1 && [ "$(id -u "$NAME")" -eq 0 ]; then
        echo "create_sandbox_user.sh: $NAME is root; refusing to use it as a sandbox account" >&2
        exit 1
    fi
done

NOLOGIN="$(command -v nologin || echo /usr/sbin/nologin)"

create() {
    local name="$1" group_option=()
    if getent group "$name" >/dev/null 2>&1; then
        group_option=(-g "$name")   # a group of that name is left from an earlier account: reuse it
    fi
    if command -v useradd >/dev/null 2>&1; then
        if [ ${#group_option[@]} -gt 0 ]; then
            useradd --system "${group_option[@]}" --no-create-home --home-dir /nonexistent --shell "$NOLOGIN" "$name"
        else
            useradd --system --user-group --no-create-home --home-dir /nonexistent --shell "$NOLOGIN" "$name"
        fi
    else
        adduser --system --group --no-create-home --home /nonexistent --shell "$NOLOGIN" "$name"
    fi
}

for NAME in "${NAMES[@]}"; do
    if id -u "$NAME" >/dev/null 2>&1; then
        echo "sandbox user $NAME exists (uid $(id -u "$NAME"))"
        continue
    fi
    # useradd fails while another one holds the lock on /etc/passwd (parallel test workers): try again.
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        if output="$(create "$NAME" 2>&1)" || id -u "$NAME" >/dev/null 2>&1; then
            break
        fi
        if [ "$attempt" -eq 10 ]; then
            echo "$output" >&2
            echo "create_sandbox_user.sh: could not create $NAME" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "created sandbox user $NAME (uid $(id -u "$NAME"))"
done
