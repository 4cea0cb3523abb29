#!/usr/bin/env bash
# Prepare a wheel folder for bench/gpu_check.sh, on a machine that reaches PyPI.
#
# The GPU machines have PyTorch (CUDA), transformers 5.x, numpy and safetensors but no
# package index. This downloads, with --no-deps, exactly the distributions the GPU
# check imports that may be missing there, at the versions installed in this
# project's venv (the versions the tests ran with):
#   pure Python (one py3-none-any wheel serves every Python >= 3.11, diffusers' floor):
#     diffusers, hydra-core, omegaconf, antlr4-python3-runtime (sdist only on PyPI:
#     built here into a py3-none-any wheel), open_clip_torch (only for its CLIP BPE
#     vocabulary file; never imported), requests + urllib3, idna, certifi,
#     charset_normalizer (diffusers checks requests at import), importlib_metadata,
#     zipp, filelock, huggingface_hub, packaging, tqdm, typing_extensions
#   binary, one wheel per CPython 3.11-3.14 on manylinux x86_64: pillow (diffusers
#     imports PIL), pyyaml (omegaconf)
# peft and accelerate are not needed: random weights load no LoRA and no checkpoint.
#
#   bash benchmarks/prepare_wheels.sh [DEST]       # DEST defaults to ./wheels (git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { echo "prepare_wheels: $PY not found; set PYTHON to the project's venv python" >&2; exit 2; }
DEST=${1:-wheels}
mkdir -p "$DEST"

PURE="diffusers hydra-core omegaconf antlr4-python3-runtime open_clip_torch requests urllib3 idna certifi
charset_normalizer importlib_metadata zipp filelock huggingface_hub packaging tqdm typing_extensions"
BINARY="pillow pyyaml"
PYVERS="3.11 3.12 3.13 3.14"

version_of() {
  "$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || {
    echo "prepare_wheels: $1 is not installed in $PY's environment (make install first)" >&2; exit 2; }
}

manifest="$DEST/MANIFEST.txt"
: > "$manifest.tmp"
for dist in $PURE; do
  ver=$(version_of "$dist")
  if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --platform any --implementation py --abi none \
        --python-version 3.11 -d "$DEST" "$dist==$ver" 2>/dev/null; then
    # no pure wheel on PyPI (antlr4-python3-runtime ships an sdist): build one here
    "$PY" -m pip wheel -q --no-deps -w "$DEST" "$dist==$ver"
  fi
  echo "$dist==$ver pure" >> "$manifest.tmp"
done
for dist in $BINARY; do
  ver=$(version_of "$dist")
  for pv in $PYVERS; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version "$pv" \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$DEST" "$dist==$ver" \
      || echo "prepare_wheels: no $dist==$ver wheel for CPython $pv on manylinux x86_64 (skipped)" >&2
  done
  echo "$dist==$ver binary" >> "$manifest.tmp"
done
mv "$manifest.tmp" "$manifest"

# every wheel meant to be pure must be py3-none-any, or the GPU machine's Python may not take it
bad=$(ls "$DEST" | grep '\.whl$' | grep -v -e 'none-any\.whl$' -e '^pillow-' -e '^pyyaml-' -e '^PyYAML-' || true)
if [ -n "$bad" ]; then
  echo "prepare_wheels: expected pure py3-none-any wheels, got: $bad" >&2; exit 1
fi
echo "prepare_wheels: $(ls "$DEST"/*.whl | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $DEST:"
cat "$manifest"
