#!/bin/sh
# Every benchmark script in its --quick mode (a few seconds each on an idle machine, one thread): a check that a
# change to the package has not broken a benchmark. CI runs it; the numbers it prints mean nothing.
#
#     sh bench/quick.sh
set -e
cd "$(dirname "$0")/.."
for s in "bench_loss.py" "bench_train_step.py" "bench_fast_paths.py" "head_variants.py --reps 2" "profile_loss.py" "bench_inference.py" \
         "bench_accuracy.py --data shapes" "bench_accuracy.py --data bccd" "bench_body.py" "bccd_body.py" "shapes_body.py" "wbc.py" \
         "panel.py" "yolo_peer.py" "step_parts.py" "frozen_bccd.py" "recipe_bccd.py" "recipe_speed.py"; do  # yolo_peer.py: a message and exit 0 without ultralytics (AGPL, bench only)
  t0=$(date +%s)
  python bench/$s --quick --threads 1 > /tmp/bench_quick.log 2>&1 || { cat /tmp/bench_quick.log; echo "bench: $s --quick failed"; exit 1; }
  echo "bench: $s --quick ran in $(( $(date +%s) - t0 ))s"
done
