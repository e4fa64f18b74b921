#!/usr/bin/env bash
# The comparison of docs/results.md: the paper's step load on the capacity plan, under the
# paper's HPA settings and under the capacity, QoS and hybrid policies, one run after another,
# then `testbed compare` over them. By default the 12-minute variant (a step every 120 s);
# --full plays the paper's 30 minutes (5-minute steps). About 2 or 4.5 hours in all for one
# run of each; --repeat N runs each N times (a group folder each, compared as mean and 95% CI).
#
# --shield also moves the machine's other processes off the proxies' CPUs during each run
# (docs/local-mode.md, "The shield"). --set KEY=VALUE is passed to every run, for instance
# --set proxies.cpu=20m where this machine's benchmark calls for another CPU limit
# (docs/experiments.md, Calibration).
#
#   scripts/compare-policies.sh [--full] [--repeat N] [--shield] [--set KEY=VALUE]... [names...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh

step_every=120
suffix=-compressed
repeat=1
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --full) step_every=300; suffix=; shift ;;
    --repeat) repeat="$2"; shift 2 ;;
    --shield) extra+=(--set isolation.shield=true); shift ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    *) break ;;
  esac
done
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  names=(step-capacity-plan step-hpa-25m step-hpa-20m step-hpa-10m step-hpa-10m-120s
         step-hpa-5m step-capacity step-qos step-hybrid)
fi
root="results/comparison$suffix-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$root"
folders=()
for name in "${names[@]}"; do
  folder=$(uv run --frozen testbed run "experiments/$name.yaml" --results "$root" \
    --set "scenario.generate.shape.step_every_s=$step_every" --set "name=$name$suffix" --repeat "$repeat" "${extra[@]}" | tail -n 1) \
    || [[ $? -eq 3 ]]  # 3: completed with failed calls, a result to compare like the others
  echo "$name: $folder"
  folders+=("$root/$(basename "$folder")")
done
uv run --frozen testbed compare "${folders[@]}" --out "$root/compare"
