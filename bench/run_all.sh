#!/bin/sh
# The full benchmark run, for bench/RESULTS.md. Run it from the repository root on a QUIET machine (nothing else
# running: several threads on a busy machine can be many times slower than one), with 2 CPU cores:
#
#     sh bench/run_all.sh            # about 70 minutes; tables in bench/results/*.md, numbers in bench/results/*.json
#
# Times: loss 2 x ~3 min (glibc's malloc as it is, and keeping freed memory), training step ~3 min (2 threads) + ~2 min
# (1 thread, as ssd-train runs), head variants 2 x ~2 min, inference ~1 min, accuracy on the shapes 2 min x 3 models + data ~8 min, accuracy on BCCD 15 min x 3 models ~47 min (SSDlite is trained twice: torchvision's reference SGD recipe and
# AdamW, and the better of the two is the one to quote).
set -e
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p $out
T=${THREADS:-2}
python bench/bench_loss.py --threads $T --json $out/loss.json | tee $out/loss.md
python bench/bench_loss.py --threads $T --malloc keep --json $out/loss_malloc_keep.json | tee $out/loss_malloc_keep.md
python bench/bench_train_step.py --threads $T --json $out/train_step.json | tee $out/train_step.md
python bench/bench_train_step.py --threads 1 --json $out/train_step_1thread.json | tee $out/train_step_1thread.md
python bench/head_variants.py --threads 1 --reps 60 --json $out/head_variants_1thread.json | tee $out/head_variants_1thread.md
python bench/head_variants.py --threads $T --reps 60 --json $out/head_variants.json | tee $out/head_variants.md
python bench/bench_inference.py --threads $T --json $out/inference.json | tee $out/inference.md
python bench/bench_accuracy.py --threads $T --data shapes --budget 120 --tv-opt sgd,adamw --json $out/accuracy_shapes.json | tee $out/accuracy_shapes.md
python bench/bench_accuracy.py --threads $T --data bccd --budget 900 --tv-opt sgd,adamw --json $out/accuracy_bccd.json | tee $out/accuracy_bccd.md
