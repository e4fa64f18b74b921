#!/usr/bin/env bash
# The main job: set everything up, then answer the testbed's question on the embedded local
# testbed. The same load (4 -> 30 invites/s in 110 s, experiments/tour-*.yaml) is served three
# times through real Kamailio proxies at 20m CPU each: by a static pool sized for where the load
# starts (1 proxy), by the capacity plan (6 proxies, sized for the peak) and by the capacity
# autoscaling policy (from 2 proxies). `testbed compare` then says which met P0 and at what cost
# (proxy-seconds). About 9 minutes; the last line printed is the folder with compare.html.
#
#   scripts/demo.sh [--single] [testbed run options...]
#
#   --single    the shorter single-run demo instead (experiments/demo.yaml, about 3 minutes)
#   -h, --help  this text (installs nothing)
#
# Other options go to every `testbed run`, e.g. --set isolation.shield=true. Exit status: 0 when
# every run completed and the comparison was written (the static pool missing P0 is the expected
# finding, not a failure), 1 when a run did not complete, 130 when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

single=false
case "${1:-}" in
  -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --single) single=true; shift ;;
esac

started=$SECONDS
scripts/setup.sh
source scripts/env.sh
echo "demo: setup took $((SECONDS - started)) s"

if $single; then
  exec uv run --frozen testbed run experiments/demo.yaml "$@"
fi

started=$SECONDS
root="results/tour-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$root"
folders=()
for name in static plan autoscale; do
  echo "demo: run $((${#folders[@]} + 1)) of 3: experiments/tour-$name.yaml"
  rc=0
  uv run --frozen testbed run "experiments/tour-$name.yaml" --results "$root" "$@" || rc=$?
  [[ $rc -eq 130 ]] && exit 130
  folder="$(ls -d "$root/tour-$name"-*/ 2>/dev/null | tail -1)"
  if [[ -z "$folder" ]] || ! grep -q '"status": "completed"' "$folder/summary.json" 2>/dev/null; then
    echo "demo: the tour-$name run did not complete (exit $rc); see ${folder:-$root}" >&2
    exit 1
  fi
  folders+=("${folder%/}")
done
uv run --frozen testbed compare "${folders[@]}" --out "$root"
echo "demo: the three runs and the comparison took $((SECONDS - started)) s"
echo "$root"
