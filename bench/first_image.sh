#!/usr/bin/env bash
# First image against the warm one, per method (BENCHMARKS.md, issue 19): one salient-explain
# run explains the same photo twice; summary.json's per-method seconds of both are printed.
# usage: [METHODS="occlusion lime"] [THREADS=1] bench/first_image.sh BUILD_DIR [MODEL] [PHOTO]
set -euo pipefail
build=${1:?usage: bench/first_image.sh BUILD_DIR [MODEL] [PHOTO]}
shared=$(cd "$(dirname "$0")/../../shared" && pwd)
model=${2:-$shared/models/mobilenet_v2_imagenet.pt}
photo=${3:-$shared/images/cat.png}
work=$(mktemp -d /tmp/salient_first_image.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "| method | first image s | warm image s | first / warm |"
echo "|---|---|---|---|"
for method in ${METHODS:-saliency integrated_gradients smoothgrad gradcam guided_backprop occlusion feature_ablation scorecam rise lime kernel_shap}; do
  extra=()
  case $method in rise) extra=(--samples 500) ;; lime|kernel_shap) extra=(--samples 200) ;; esac
  rm -rf "$work/out"
  "$build/bin/salient-explain" --model "$model" --image "$photo" --image "$photo" --method "$method" "${extra[@]}" \
    --threads "${THREADS:-1}" --out "$work/out" > /dev/null 2>&1
  /usr/bin/python3 - "$work/out/summary.json" "$method" <<'PY'
import json, sys
images = json.load(open(sys.argv[1]))["images"]
first, warm = (image["methods"][0]["seconds"] for image in images)
print(f"| {sys.argv[2]} | {first:.3f} | {warm:.3f} | {first / warm:.2f} |")
PY
done
