#!/bin/bash
# From a fresh Debian 12 machine: install what is missing, build gemel, and run the main job on
# the bundled example: build the demo camera workload (4 classifiers cut from Fashion-MNIST, and a
# yolov3-tiny detector of bags and sneakers on opencv-doc's street video), train each task's
# unmerged model from scratch, merge them, re-evaluate the merged models from results.h5, and
# print the final table, then profile the merged models on the CPU, simulate the edge box over
# memory budgets, and write report.html. Output goes to data/demo/ (override with GEMEL_DEMO_DIR).
# The main job takes under 5 minutes on 2 CPU cores: about 80 s of training, and a search with a
# 90 s time budget. It prints how long setup, build and the main job took.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
start=$(date +%s)

gemel_install_deps
installed=$(date +%s)
gemel_build gemel gemel-data
built=$(date +%s)

gemel="$GEMEL_BUILD_DIR/src/gemel"
gemel_data="$GEMEL_BUILD_DIR/data_tools/gemel-data"
demo="${GEMEL_DEMO_DIR:-$GEMEL_ROOT/data/demo}"
cd "$GEMEL_ROOT"

echo
echo "== 1. the demo workload: datasets and $demo/demo.yaml"
"$gemel_data" demo --out "$demo"
echo
echo "== 2. what the models could share"
"$gemel" inspect --config "$demo/demo.yaml" --top 6
echo
echo "== 3. train each task's unmerged model"
"$gemel" train --config "$demo/demo.yaml" --out "$demo/trained" --epochs "${GEMEL_DEMO_EPOCHS:-10}"
echo
echo "== 4. merge (greedy search, joint retraining)"
"$gemel" merge --config "$demo/trained/demo_cameras.trained.yaml" --out "$demo/merged"
echo
echo "== 5. re-evaluate from $demo/merged/results.h5"
"$gemel" eval --results "$demo/merged/results.h5"
"$gemel" export --results "$demo/merged/results.h5" --all --out "$demo/export"
echo
echo "== 6. the edge plan: measure the merged models on this CPU, schedule them over memory budgets"
# (10 timed runs per batch size, not 20: the demo's figures, in half the time)
"$gemel" profile --results "$demo/merged/results.h5" --device cpu --repeats 10 --out "$demo/profile.h5"
"$gemel" simulate --results "$demo/merged/results.h5" --profile "$demo/profile.h5" \
  --out "$demo/simulation.h5"
echo
echo "== 7. the report"
"$gemel" report --results "$demo/merged/results.h5" --profile "$demo/profile.h5" \
  --simulation "$demo/simulation.h5" --out "$demo/report.html"
end=$(date +%s)
echo
echo "quickstart finished in $(( end - start )) s (setup $(( installed - start )) s, build $(( built - installed )) s, main job $(( end - built )) s)"
echo "open the report: $demo/report.html"
