#!/usr/bin/env bash
# Builds .venv-lmms: lmms-eval beside the main venv's torch 2.13.0 (the CPU wheel) and PyAV, with p4d
# installed editable, so `python -m lmms_eval --model p4d` runs a p4d student (docs/eval.md, "lmms-eval").
#
#   bash bench/lmms_env.sh [VENV]      # default .venv-lmms (gitignored); `make lmms-env` runs it
#
# Why not `pip install lmms-eval`: lmms-eval 0.7.3 asks av<16 (p4d's main venv has PyAV 18) and
# torchvision, whose newest wheel pulls torch 2.14 (multi-GB CUDA). Its metadata accepts torch>=2.1, so
# torch 2.13.0 goes in first; then lmms-eval --no-deps, then p4d's extra `lmms-run` (setup.cfg): the
# packages `python -m lmms_eval --tasks r4d_bench` imports, under a constraints file that holds torch
# and av at the main venv's versions. Reused when its stamp is newer than setup.cfg and this script.
# Output: one line with the build time and size; pip's log stays in VENV/install.log.
set -euo pipefail
SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$SCRIPT")/.."
VENV=${1:-.venv-lmms}
LMMS_EVAL_VERSION=${LMMS_EVAL_VERSION:-0.7.3}
STAMP=$VENV/.p4d-lmms-installed
if [ -f "$STAMP" ] && [ "$STAMP" -nt setup.cfg ] && [ "$STAMP" -nt "$SCRIPT" ]; then
    echo "lmms env: $VENV reused ($(cat "$STAMP"))"
    exit 0
fi
# PyAV as in the main venv (the same decoder as `p4d eval`), else the version notes/env.md records
AV_VERSION=$( (.venv/bin/python -c 'import av; print(av.__version__)') 2>/dev/null || echo 18.1.0)
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
start=$(date +%s)
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
printf 'torch==2.13.0\nav==%s\n' "$AV_VERSION" > "$VENV/constraints.txt"
log=$VENV/install.log
pip_in() { "$VENV/bin/pip" install --disable-pip-version-check "$@" >>"$log" 2>&1 || { tail -20 "$log" >&2; echo "lmms env: pip install $* failed (log: $log)" >&2; exit 1; }; }
: > "$log"
pip_in -c "$VENV/constraints.txt" torch==2.13.0
pip_in --no-deps "lmms-eval==$LMMS_EVAL_VERSION"
pip_in -c "$VENV/constraints.txt" -e '.[lmms-run]'
# the plugin resolves through lmms-eval's own registry (entry point group lmms_eval.models)
"$VENV/bin/python" -c '
import lmms_eval.__main__, torch, av
from lmms_eval.models import get_model
from p4d.eval.lmms_model import P4DStudent
assert get_model("p4d") is P4DStudent, get_model("p4d")
assert torch.__version__.startswith("2.13.0"), torch.__version__
' || { echo "lmms env: $VENV does not import lmms-eval with the p4d model" >&2; exit 1; }
took=$(( $(date +%s) - start ))
echo "lmms-eval $LMMS_EVAL_VERSION, torch 2.13.0, av $AV_VERSION; built in ${took} s, $(du -sh "$VENV" | cut -f1)" > "$STAMP"
echo "lmms env: $VENV $(cat "$STAMP")"
