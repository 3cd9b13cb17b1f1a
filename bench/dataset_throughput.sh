#!/usr/bin/env bash
# Dataset throughput of salient-explain --format hdf5 (BENCHMARKS.md, "Dataset runs"): images/s
# for gradient, integrated gradients (32 steps) and Grad-CAM over N photos, one process with 2
# threads against mpirun -np 2 with 1 thread each, and the share of the wall time that decoding
# and writing hold the run up (summary.json "timing": decode_wait + write_wait + merge over wall;
# decoding and writing run on threads of their own, so only the waits for them hold the run up).
# usage: [METHODS="saliency gradcam"] [EXTRA="--compression 0"] bench/dataset_throughput.sh BUILD_DIR [N=2000] [MODEL] [SIZE]
# The N photos are links to ../shared/images' photos, cycled through 10 class folders, so every
# item is decoded and resized from its file as a real dataset's would be.
set -euo pipefail
build=${1:?usage: bench/dataset_throughput.sh BUILD_DIR [N] [MODEL] [SIZE]}
count=${2:-2000}
shared=$(cd "$(dirname "$0")/../../shared" && pwd)
model=${3:-$shared/models/mobilenet_v1_025_128_imagenet.pt}
size=${4:-128}
(( count >= 1 && count <= 1000000 )) || { echo "N must be in [1, 1000000]" >&2; exit 2; }
work=$(mktemp -d /tmp/salient_throughput.XXXXXX)
trap 'rm -rf "$work"' EXIT
photos=()
for f in "$shared"/images/*.png "$shared"/images/*.jpg; do
  case $(basename "$f") in *mask*|*segmentation*|imprinting*) continue ;; esac
  photos+=("$f")
done
for ((i = 0; i < count; i++)); do
  class=$work/photos/class_$((i % 10))
  mkdir -p "$class"
  f=${photos[$((i % ${#photos[@]}))]}
  ln -s "$f" "$class/$i.${f##*.}"
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "| method | setting | images | wall s | images/s | decode wait s | write s (its thread) | write wait s | merge s | I/O share of wall |"
echo "|---|---|---|---|---|---|---|---|---|---|"
read -r -a extra <<< "${EXTRA:-}"
for method in ${METHODS:-saliency integrated_gradients gradcam}; do
  for setting in "1 process x 2 threads" "mpirun -np 2 x 1 thread"; do
    out=$work/out
    rm -rf "$out"
    common=(--model "$model" --size "$size" --images "$work/photos" --method "$method" --steps 32 --format hdf5 "${extra[@]}")
    if [[ $setting == mpirun* ]]; then
      mpirun --oversubscribe -np 2 "$build/bin/salient-explain" "${common[@]}" --threads 1 --mpi --out "$out" > /dev/null 2>&1
    else
      "$build/bin/salient-explain" "${common[@]}" --threads 2 --out "$out" > /dev/null 2>&1
    fi
    /usr/bin/python3 - "$out/summary.json" "$method" "$setting${EXTRA:+, $EXTRA}" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["timing"]
# decode_wait and write_wait are summed over the processes: per process they are / processes.
processes = s.get("processes", 1)
share = (t["decode_wait"] + t["write_wait"]) / processes + t["merge"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {s['items']} | {t['wall']:.1f} | {s['items'] / t['wall']:.1f} | "
      f"{t['decode_wait']:.2f} | {t['write']:.2f} | {t['write_wait']:.2f} | {t['merge']:.2f} | {100 * share / t['wall']:.1f}% |")
PY
  done
done
