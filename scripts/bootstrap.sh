#!/usr/bin/env bash
# Set up pbdr on a fresh Debian machine, then run the main job or the tests.
#
#   bash scripts/bootstrap.sh demo    # inverse-rendering demo on a bundled scene
#   bash scripts/bootstrap.sh test    # the test suite (what CI runs)
#
# Installs what is missing: libLLVM >= 17 (Debian's libllvm19, for Dr.Jit's
# LLVM backend) and a virtual environment .venv with pbdr and its pinned
# dependencies. Safe to run again: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
job="${1:-test}"

have_libllvm() {
    local f v
    for f in /usr/lib/*-linux-gnu/libLLVM* /usr/lib/llvm-*/lib/libLLVM* /usr/lib64/libLLVM*; do
        [ -e "$f" ] || continue
        v=$(basename "$f" | sed -nE 's/^libLLVM(-|\.so\.)([0-9]+).*/\2/p')
        [ -z "$v" ] && v=$(echo "$f" | sed -nE 's|.*/llvm-([0-9]+)/.*|\1|p')
        [ -n "$v" ] && [ "$v" -ge 17 ] && return 0
    done
    return 1
}

if [ -z "${DRJIT_LIBLLVM_PATH:-}" ] && ! have_libllvm; then
    echo "bootstrap: installing libllvm19 (Dr.Jit's LLVM backend needs libLLVM >= 17)"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libllvm19 >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv"
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import pbdr, pytest, xdist, mitsuba, matplotlib, mkdocs, mkdocstrings, material" >/dev/null 2>&1; then
    echo "bootstrap: installing pbdr and its dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[test]'
fi

case "$job" in
    demo) exec .venv/bin/python scripts/demo.py ;;
    # Two workers or more: a cold run spends most of its time compiling kernels, one core each.
    test) exec .venv/bin/python -m pytest -q -n auto --maxprocesses=4 tests ;;
    *) echo "usage: bash scripts/bootstrap.sh demo|test" >&2; exit 2 ;;
esac
