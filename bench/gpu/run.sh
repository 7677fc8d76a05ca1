#!/usr/bin/env bash
# The GPU training benchmark in one command (bench/gpu/README.md says what it measures and assumes).
#
#   bash bench/gpu/run.sh          on the GPU machine: Python set up, nvidia-smi, bench/train.py with
#                                  GPT-2 124M on the GPU, raw JSON to docs/figures/train_gpu_<card>.json
#                                  (and, when $OUT is set, a copy and the log under $OUT)
#   bash bench/gpu/run.sh fetch    on a machine with internet: the wheels the GPU image lacks, into .whl/
#
# Settings (environment): STEPS (200), ROUNDS (2), BATCH (32), CHECKPOINT_EVERY (100), LOG_EVERY (20),
# COMPILE (1), PYTHON (an interpreter with CUDA torch and custody's needs: skips the setup),
# BENCH_TIMEOUT (seconds, 390), WHEELS (.whl), PY_VERSION (for fetch: the GPU image's Python, 3.12),
# FIGURES (where the JSON goes, docs/figures); for a dry run of this script on a CPU: DEVICE=cpu PRESET=small.
set -euo pipefail
cd "$(dirname "$0")/../.."

STEPS=${STEPS:-200}
ROUNDS=${ROUNDS:-2}
BATCH=${BATCH:-32}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-100}
LOG_EVERY=${LOG_EVERY:-20}
COMPILE=${COMPILE:-1}
DEVICE=${DEVICE:-cuda}
PRESET=${PRESET:-gpt2-124m}
FIGURES=${FIGURES:-docs/figures}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-390}
WHEELS=${WHEELS:-.whl}
PY_VERSION=${PY_VERSION:-3.12}
SITE=.gpu-site

# What custody's training path imports beyond what the GPU image has (torch, numpy, pandas, pyarrow,
# tokenizers, rich, typer, psutil, py-cpuinfo, nvidia-ml-py, requests, prometheus-client, ...):
# the ledger's and the home's own needs, and CodeCarbon with its requirements.
NEEDS=(codecarbon arrow authlib joserfc questionary prompt-toolkit wcwidth pycountry rapidfuzz
    pydantic pydantic-core annotated-types typing-inspection rfc8785 bcrypt cryptography cffi pycparser
    zstandard)

say() { printf '\n== %s\n' "$*"; }
# Keep a folder made here out of git (and out of what travels to the GPU machine with the working tree).
ignore() { grep -qx "/$1/" .git/info/exclude 2>/dev/null || printf '\n/%s/\n' "$1" >>.git/info/exclude; }

if [ "${1:-}" = fetch ]; then
    # Same versions as the development venv (.venv), built for the GPU image's Python.
    say "fetching ${#NEEDS[@]} wheels for CPython $PY_VERSION into $WHEELS/"
    mkdir -p "$WHEELS"
    case $WHEELS in /*) ;; *) ignore "$WHEELS" ;; esac
    for name in "${NEEDS[@]}"; do
        version=$(.venv/bin/python -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
        timeout 120 .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
            -d "$WHEELS" "$name==$version"
    done
    du -sh "$WHEELS"
    echo "carry $WHEELS to the GPU machine with the working tree, then: bash bench/gpu/run.sh"
    exit 0
fi

say "GPU"
timeout 30 nvidia-smi || echo "nvidia-smi: not found or failed (is this a GPU machine?)"

say "Python"
if [ -n "${PYTHON:-}" ]; then
    py=$PYTHON
elif [ -x .venv/bin/python ] && timeout 60 .venv/bin/python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    py=.venv/bin/python # the repo's own venv, where it holds a CUDA build of torch
else
    # The machine's python3, whose torch is a CUDA build (no CUDA wheel of torch can travel: gigabytes).
    # custody from platform/ (what `pip install -e .` puts on the path) and the wheels the image lacks,
    # installed offline into $SITE, both on PYTHONPATH. No venv: the image's python3 is itself a venv, and
    # a venv made from it with --system-site-packages would see the base Python's packages, not its torch.
    py=$(command -v python3)
    if [ -d "$WHEELS" ]; then
        [ -d .git ] && ignore "$SITE"
        timeout 300 "$py" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" "$WHEELS"/*.whl
    fi
    export PYTHONPATH="$PWD/platform:$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
"$py" --version
check=0
timeout 120 "$py" - "$DEVICE" <<'EOF' || check=$?
import importlib, sys
missing = []
for name in ('torch', 'numpy', 'tokenizers', 'codecarbon', 'custody.home', 'custody.train.loop', 'custody.train.carbon'):
    try:
        importlib.import_module(name)
    except Exception as exc:
        missing.append(f'{name} ({type(exc).__name__}: {exc})')
if missing:
    print('cannot import: ' + '; '.join(missing), file=sys.stderr)
    sys.exit(2)
import torch
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU seen:', torch.cuda.is_available())
if sys.argv[1] == 'cuda' and not torch.cuda.is_available():
    print('torch sees no GPU: a CUDA build of torch and a GPU are needed (bench/gpu/README.md)', file=sys.stderr)
    sys.exit(3)
EOF
if [ "$check" = 2 ]; then
    echo "setup incomplete: missing packages travel as wheels: 'bash bench/gpu/run.sh fetch' on a machine with"
    echo "internet, then carry $WHEELS/ with the working tree (bench/gpu/README.md)."
fi
[ "$check" = 0 ] || exit "$check"

card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1 || true)
card=$(echo "${card:-gpu}" | tr '[:upper:]' '[:lower:]' | sed -e 's/^nvidia //' -e 's/[^a-z0-9].*$//')
out=$FIGURES/train_gpu_${card:-gpu}.json
log=${OUT:-bench/out}/train_gpu_${card:-gpu}.log
mkdir -p "$(dirname "$log")"

say "bench/train.py on $DEVICE: $PRESET, $ROUNDS ABBA rounds of $STEPS steps, batch $BATCH (timeout ${BENCH_TIMEOUT}s)"
args=(--device "$DEVICE" --preset "$PRESET" --batch "$BATCH" --steps "$STEPS" --rounds "$ROUNDS"
    --checkpoint-every "$CHECKPOINT_EVERY" --log-every "$LOG_EVERY")
bench() { # LIMIT_S OUT_FILE [more flags]: rc 0 losses agree, 1 they do not, 124 timed out
    local limit=$1 file=$2
    shift 2
    PYTHONUNBUFFERED=1 timeout "$limit" "$py" bench/train.py "${args[@]}" "$@" --out "$file" 2>&1 | tee -a "$log"
}
started=$SECONDS
rc=0
if [ "$COMPILE" = 1 ]; then bench "$BENCH_TIMEOUT" "$out" --compile || rc=$?; else bench "$BENCH_TIMEOUT" "$out" || rc=$?; fi
echo "bench/train.py exit status $rc after $((SECONDS - started)) s (0: losses agree; 1: they do not; 124: timed out)"
if [ "$rc" -ge 2 ] && [ "$rc" != 124 ] && [ "$COMPILE" = 1 ] && [ $((SECONDS - started)) -lt 120 ]; then
    # torch.compile failed early: the eager loops still give tokens/s, MFU and the ratio.
    say "torch.compile failed: the same run without it (timeout 240s)"
    out=$FIGURES/train_gpu_${card:-gpu}_eager.json
    rc=0
    bench 240 "$out" || rc=$?
fi
if [ -n "${OUT:-}" ] && [ -f "$out" ]; then
    cp "$out" "$OUT/"
fi
echo "raw figures: $out${OUT:+ (copied to \$OUT)}; log: $log"
exit "$rc"
