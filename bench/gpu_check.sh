#!/usr/bin/env bash
# GPU check: inference-time, throughput and fast-path figures with random full-size
# weights (no downloads) at 16x512x512 in bf16, on a GPU machine without a package index.
#
# Needs a wheel folder made beforehand on a machine that reaches PyPI:
#   bash benchmarks/prepare_wheels.sh            # -> ./wheels (git-ignored; carry it along)
# Then, from the repository root on the GPU machine:
#   bash bench/gpu_check.sh                      # figures to $OUT if set, else results/gpu/
#   bash bench/gpu_check.sh --dry-run            # CPU, tiny models, tiny sizes: proves the script
#
# Only distributions missing from the machine's Python are installed (pip --no-index
# --no-deps --target into a private folder put first on PYTHONPATH; a plain unzip when
# pip itself is missing); nothing in the machine's environment changes. --dry-run
# installs every wheel into a fresh folder, so the offline install is exercised too.
# Each step runs under a time limit so the whole check, install included, ends within
# GPU_CHECK_BUDGET_S (default 540 s, under 10 minutes on one H100; 900 s for --dry-run
# on a CPU) from a cold start; a step that runs out is reported and skipped. The
# compiled step's budget is set first (GPU_CHECK_COMPILE_S, default 170 s): the steps
# before it only get what is left beyond it, so it always has its time to finish.
# Steps: the timing protocol in bf16, then fp16 (the paper's precision) beside it, the
# Table 1 throughput, I3D and CLIP ViT-H/14 feature throughput in fp32 / bf16 / fp16,
# the fast path vs plain diffusers, and the fast path compiled.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=gpu
for arg in "$@"; do
  case "$arg" in
    --dry-run) MODE=dry ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$arg' (use --dry-run or nothing)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
WHEELS=${WHEELS:-$ROOT/wheels}
if [ $MODE = dry ]; then BUDGET=${GPU_CHECK_BUDGET_S:-900}; else BUDGET=${GPU_CHECK_BUDGET_S:-540}; fi
if [ -n "${OUT:-}" ]; then OUTDIR=$OUT; elif [ $MODE = dry ]; then OUTDIR=$ROOT/results/gpu/dry-run; else OUTDIR=$ROOT/results/gpu; fi
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu_check.log
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)
say() { echo "[gpu_check $(( $(date +%s) - START ))s] $*"; }
remaining() { echo $(( BUDGET - ($(date +%s) - START) )); }

say "mode=$MODE python=$PY wheels=$WHEELS out=$OUTDIR budget=${BUDGET}s"
command -v "$PY" >/dev/null || { say "ERROR: $PY not found; set PYTHON=/path/to/python"; exit 2; }
"$PY" - <<'PYCHECK' || exit 2
import sys
if sys.version_info < (3, 11):
    sys.exit(f"gpu_check: Python {sys.version.split()[0]} is too old: diffusers 0.42.1 needs Python >= 3.11. "
             f"Run with PYTHON=/path/to/python3.11+.")
try:
    import torch, transformers, numpy, safetensors  # the machine's own packages
except ImportError as exc:
    sys.exit(f"gpu_check: {exc.name} is missing; the GPU check expects torch, transformers, numpy and safetensors "
             f"to be installed already (only pure-Python extras come from the wheel folder).")
PYCHECK

# ---------------------------------------------------------------- offline install
if [ $MODE = dry ]; then
  SITE=$(mktemp -d "${TMPDIR:-/tmp}/lcmbench-site.XXXXXX")
  FORCE_ALL=1
else
  SITE=${LCMBENCH_SITE:-${TMPDIR:-/tmp}/lcmbench-site}
  FORCE_ALL=0
fi
mkdir -p "$SITE"
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
[ -f "$WHEELS/MANIFEST.txt" ] || { say "ERROR: $WHEELS/MANIFEST.txt missing: run 'bash benchmarks/prepare_wheels.sh' on a machine with PyPI access and bring ./wheels along"; exit 2; }
install_wheels() {  # install_wheels FORCE_LIST: the missing distributions plus those named
  WHEELS="$WHEELS" SITE="$SITE" FORCE_ALL=$FORCE_ALL FORCE="$1" "$PY" - <<'PYINSTALL'
import glob, importlib.metadata as md, os, re, subprocess, sys, zipfile

wheels, site = os.environ["WHEELS"], os.environ["SITE"]
force_all = os.environ["FORCE_ALL"] == "1"
force = set(os.environ["FORCE"].split())
norm = lambda n: re.sub(r"[-_.]+", "_", n).lower()
need = []
for line in open(os.path.join(wheels, "MANIFEST.txt")):
    if not line.strip():
        continue
    spec, kind = line.split()
    dist, version = spec.split("==")
    try:
        have = md.version(dist)
    except md.PackageNotFoundError:
        have = None
    if have is None or force_all or dist in force:
        need.append((dist, version))
        print(f"  install {dist}=={version}" + (f" (have {have})" if have else ""))
    else:
        print(f"  present {dist} {have}")
if need:
    specs = [f"{d}=={v}" for d, v in need]
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels, "--no-deps",
           "--target", site, "--upgrade", *specs]
    has_pip = os.environ.get("GPU_CHECK_NO_PIP") != "1" and \
        subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0
    if has_pip:
        subprocess.run(cmd, check=True)
    else:  # no pip: a wheel is a zip of the installed tree
        tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
        for dist, version in need:
            files = [f for f in glob.glob(os.path.join(wheels, "*.whl"))
                     if norm(os.path.basename(f).split("-")[0]) == norm(dist) and f"-{version}-" in os.path.basename(f)
                     and (f.endswith("none-any.whl") or f"-{tag}-" in os.path.basename(f))]
            if not files:
                sys.exit(f"no wheel of {dist}=={version} for this Python ({tag}) in {wheels}")
            zipfile.ZipFile(files[0]).extractall(site)
            print(f"  unzipped {os.path.basename(files[0])}")
PYINSTALL
}
check_imports() {
  "$PY" - <<'PYENV'
import platform, torch, diffusers, transformers, hydra, omegaconf
from diffusers import AnimateDiffPipeline  # noqa: F401  (the import chain the check needs)
import bench.timing.denoising, models.fast  # noqa: F401
print(f"  python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"diffusers {diffusers.__version__} from {diffusers.__file__.rsplit('/', 2)[0]}, transformers {transformers.__version__}")
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        print(f"  GPU {i}: {torch.cuda.get_device_name(i)}, {torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB")
PYENV
}
install_wheels "${GPU_CHECK_FORCE:-}" || { say "ERROR: offline install failed"; exit 2; }
if ! check_imports; then
  # the machine's huggingface_hub may be older than diffusers 0.42.1 needs (>= 1.32): try the wheel's
  say "imports failed; retrying with huggingface_hub from the wheel folder"
  install_wheels "${GPU_CHECK_FORCE:-} huggingface_hub" && check_imports \
    || { say "ERROR: the harness does not import with these packages (see above)"; exit 2; }
fi

if [ $MODE = gpu ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { say "ERROR: no CUDA GPU visible to torch (use --dry-run to check the script on a CPU)"; exit 2; }
  COMMON=(--weights random --device cuda --dtype bfloat16 --frames 16 --height 512 --width 512)
  T_REPEATS=3; TP_REPEATS=2; TP_BATCH=2; FP_BATCH=4; FP_REPEATS=3
  CAP_TIMING=110; CAP_TIMING16=70; CAP_THROUGHPUT=60; CAP_METRICS=35; CAP_FAST=70
  COMPILE_S=${GPU_CHECK_COMPILE_S:-170}
  # fp16 beside bf16: AnimateLCM and the DDIM teacher (its 50 steps with CFG give the speed-up)
  TIMING16=(weights=random runner.device=cuda runner.dtype=float16 '~methods.dpmpp' '~methods.animatelcm_r'
            'runner.timing.teacher_nfe=[50]')
  I3D=(--device cuda --clips 64 --batch-size 16 --dtype fp32 bf16 fp16)
  CLIPB=(--device cuda --frames 512 --batch-size 64 --dtype fp32 bf16 fp16)
  FAST_BASE=(--fast --fast-opt attention=sdpa --fast-opt channels_last_vae=true)
  # the timing command reads experiment=timing with Hydra overrides, as run_bench.py does
  TIMING=(weights=random runner.device=cuda runner.dtype=bfloat16)
else
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  COMMON=(--weights tiny --device cpu --dtype float32 --frames 2 --height 32 --width 32 --cache-dir "$SITE/cache")
  T_REPEATS=1; TP_REPEATS=1; TP_BATCH=2; FP_BATCH=2; FP_REPEATS=2
  CAP_TIMING=150; CAP_TIMING16=90; CAP_THROUGHPUT=90; CAP_METRICS=60; CAP_FAST=90
  COMPILE_S=0   # the compiled step is skipped in a dry run unless GPU_CHECK_DRY_COMPILE=1
  [ "${GPU_CHECK_DRY_COMPILE:-0}" = 1 ] && COMPILE_S=${GPU_CHECK_COMPILE_S:-300}
  FAST_BASE=(--fast --fast-opt attention=sdpa --fast-opt channels_last_vae=true)
  TIMING=(weights=tiny runner.device=cpu runner.dtype=float32 protocol.num_frames=2 protocol.height=32
          protocol.width=32 "cache_dir=$SITE/cache")
  # the harness refuses half precision on the CPU: the dry run proves the step's command in float32
  TIMING16=(weights=tiny runner.device=cpu runner.dtype=float32 protocol.num_frames=2 protocol.height=32
            protocol.width=32 "cache_dir=$SITE/cache" '~methods.dpmpp' '~methods.animatelcm_r'
            'runner.timing.teacher_nfe=[50]')
  I3D=(--device cpu --clips 2 --batch-size 2 --frames 16 --dtype fp32)
  CLIPB=(--device cpu --frames 8 --batch-size 4 --dtype fp32 --tiny)
fi

FAILED=()
RESERVE=$COMPILE_S   # held back for the compiled step until it starts
step() {  # step NAME CAP command...: run with the smaller of CAP and what is left of the budget
  local name=$1 cap=$2; shift 2
  local left; left=$(( $(remaining) - RESERVE ))
  local limit=$(( cap < left - 5 ? cap : left - 5 ))
  if [ "$limit" -lt 20 ]; then say "SKIPPED $name: budget spent"; FAILED+=("$name(skipped)"); return; fi
  say "START $name (limit ${limit}s)"
  timeout --signal=INT --kill-after=10 "$limit" "$@"
  local rc=$?
  if [ $rc -eq 0 ]; then say "DONE $name"
  elif [ $rc -eq 124 ] || [ $rc -eq 130 ]; then say "TIMED OUT $name after ${limit}s"; FAILED+=("$name(timeout)")
  else say "FAILED $name (exit $rc)"; FAILED+=("$name(exit $rc)"); fi
}

# 1. the paper's timing protocol: every method x NFE 1/2/4/8 + DDIM 25/50 with CFG
step timing "$CAP_TIMING" "$PY" -m bench.timing "${TIMING[@]}" runner.timing.warmup=1 \
  runner.timing.repeats=$T_REPEATS --out "$OUTDIR/timing.json"
# 1b. fp16, the paper's precision, beside bf16 (a lighter set: AnimateLCM and the DDIM teacher)
step timing_fp16 "$CAP_TIMING16" "$PY" -m bench.timing "${TIMING16[@]}" runner.timing.warmup=1 \
  runner.timing.repeats=$T_REPEATS --out "$OUTDIR/timing_fp16.json"
# 2. Table 1 throughput (VAE decode included, reported separately), batched
step throughput "$CAP_THROUGHPUT" "$PY" benchmarks/throughput.py "${COMMON[@]}" --batch-size $TP_BATCH --warmup 1 \
  --repeats $TP_REPEATS "${FAST_BASE[@]}" --out "$OUTDIR/throughput.json"
# 2b. metric feature throughput: I3D (FVD) and CLIP ViT-H/14 (CLIPSIM), random weights of the real architectures
step i3d_throughput "$CAP_METRICS" "$PY" benchmarks/bench_i3d.py "${I3D[@]}"
step clip_throughput "$CAP_METRICS" "$PY" benchmarks/bench_clip.py "${CLIPB[@]}"
# 3. fast path vs plain diffusers, same dtype: without compilation first (cheap), then compiled in its reserved budget
step fast_path "$CAP_FAST" "$PY" benchmarks/fast_path.py "${COMMON[@]}" --batch-size $FP_BATCH --warmup 1 \
  --repeats $FP_REPEATS --fast-opt fuse_qkv=true --fast-opt channels_last_vae=true --out "$OUTDIR/fast_path.json"
if [ $MODE = dry ] && [ "${GPU_CHECK_DRY_COMPILE:-0}" != 1 ]; then
  # inductor's CPU backend needs minutes on two cores; tests/test_fast_path.py (slow) covers compiled output
  say "SKIPPED fast_path_compiled in a dry run (GPU_CHECK_DRY_COMPILE=1 to include it)"
else
RESERVE=0
step fast_path_compiled 100000 "$PY" benchmarks/fast_path.py "${COMMON[@]}" --batch-size $FP_BATCH --warmup 1 \
  --repeats $FP_REPEATS --fast-opt fuse_qkv=true --fast-opt channels_last_vae=true --fast-opt compile_unet=true \
  --fast-opt compile_vae=true --out "$OUTDIR/fast_path_compiled.json"
fi

say "SUMMARY ($MODE)"
cp "$LOG" "$LOG.snapshot"   # grep a copy: the log is still being appended to
grep -h -E "^Speed-up|^FLOPs of one UNet|^Table 1 mix|^Projected|throughput ratio|denoising only:|^Denoising time per clip|^Throughput on|^Fast path vs plain|^animatelcm +4 |^I3D throughput|clips/s  \(|^CLIP throughput" "$LOG.snapshot" \
  | sed 's/^/  /'
rm -f "$LOG.snapshot"
say "figures and JSON in $OUTDIR; total $(( $(date +%s) - START ))s"
if [ ${#FAILED[@]} -gt 0 ]; then say "incomplete: ${FAILED[*]}"; exit 1; fi
exit 0
