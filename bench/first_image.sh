#!/usr/bin/env bash
# First image against the warm one, per method (BENCHMARKS.md, issue 19). For each method: a
# one-photo run's whole process time (what a user who explains one photo waits, start-up
# included), then one run that explains the same photo twice, with summary.json's per-method
# seconds of both. HEAP="huge plain" compares the tools' huge-page heap with the plain one
# (SALIENT_NO_THP=1).
# usage: [METHODS="occlusion lime"] [THREADS=1] [HEAP="huge plain"] bench/first_image.sh BUILD_DIR [MODEL] [PHOTO]
set -euo pipefail
build=${1:?usage: bench/first_image.sh BUILD_DIR [MODEL] [PHOTO]}
shared=$(cd "$(dirname "$0")/../../shared" && pwd)
model=${2:-$shared/models/mobilenet_v2_imagenet.pt}
photo=${3:-$shared/images/cat.png}
work=$(mktemp -d /tmp/salient_first_image.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "| method | heap | one-photo process s | first image s | warm image s | first / warm |"
echo "|---|---|---|---|---|---|"
for method in ${METHODS:-saliency integrated_gradients smoothgrad gradcam guided_backprop occlusion feature_ablation scorecam rise lime kernel_shap}; do
  extra=()
  case $method in rise) extra=(--samples 500) ;; lime|kernel_shap) extra=(--samples 200) ;; esac
  for heap in ${HEAP:-huge}; do
    env=()
    [[ $heap == plain ]] && env=(SALIENT_NO_THP=1)
    run() {
      rm -rf "$work/out"
      env "${env[@]}" "$build/bin/salient-explain" --model "$model" "$@" --method "$method" "${extra[@]}" \
        --threads "${THREADS:-1}" --out "$work/out" > /dev/null 2>&1
    }
    start=$EPOCHREALTIME
    run --image "$photo"
    one=$(/usr/bin/python3 -c "print($EPOCHREALTIME - $start)")
    run --image "$photo" --image "$photo"
    /usr/bin/python3 - "$work/out/summary.json" "$method" "$heap" "$one" <<'PY'
import json, sys
images = json.load(open(sys.argv[1]))["images"]
first, warm = (image["methods"][0]["seconds"] for image in images)
print(f"| {sys.argv[2]} | {sys.argv[3]} | {float(sys.argv[4]):.2f} | {first:.3f} | {warm:.3f} | {first / warm:.2f} |")
PY
  done
done
