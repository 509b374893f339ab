#!/usr/bin/env python
"""The BCCD recipe's training step as `ssd-train` trains it, beside YOLOv8n's, in turns (one thread, process CPU time).

    python bench/recipe_speed.py [--quick] [--json bench/results/recipe_speed.json] [--reps 7]

Three steps on the same batch (8 images of 320 px with 1-26 random boxes each, as BCCD has 13 an image on average),
each forward, loss, backward and Adam step, timed in turns: the `BCCD` recipe as `ssd-train` trains it (its model
in channels_last, the body's `frozen_layers` without gradients and in eval mode, as the learner's `FreezeAt` keeps
them), the same recipe with the whole body trained (`freeze_at=0`), and YOLOv8n (ultralytics, bench only: its
`DetectionModel('yolov8n.yaml')` and its own loss). glibc keeps freed memory, as in `ssd-train`, for all three."""
from __future__ import annotations
import os, sys
os.environ.setdefault('YOLO_OFFLINE', '1'); os.environ.setdefault('YOLO_VERBOSE', 'False')
sys.argv += [a for o,a in (('--threads', '--threads=1'), ('--clock', '--clock=cpu'), ('--malloc', '--malloc=keep'))
             if not any(s.startswith(o) for s in sys.argv)]
from dataclasses import replace
import torch
from benchutil import setup_reps, time_round_robin, med, table, write_json
from ssd_nbs.config import BCCD, build_ssd
from ssd_nbs.learner import frozen_layers
from step_parts import whole_step, yolo_step, N_MAX
from bench_train_step import batch

def recipe_step(cfg, bs, size, gen):
    "A training step of `cfg` as `ssd-train` runs it: channels_last model, `frozen_layers` frozen"
    model,loss = build_ssd(replace(cfg, size=size, grids=None) if size != cfg.size else cfg, 3)   # --quick: grids of its size
    model = model.to(memory_format=torch.channels_last)
    frozen = frozen_layers(model)
    for l in frozen: l.requires_grad_(False)
    x,bb,lb = batch(bs, size, gen, n_max=N_MAX)
    return whole_step(model, loss, x, bb, lb, frozen)

def main():
    args, info, reps, gen = setup_reps(__doc__.replace('\n\n', ' ', 1), 'steps')
    reps = args.reps or (1 if args.quick else 7)
    bs, size = (2, 160) if args.quick else (BCCD.bs, BCCD.size)
    torch.manual_seed(0)
    fns = {f'BCCD recipe (freeze_at={BCCD.freeze_at}, as ssd-train)': recipe_step(BCCD, bs, size, gen),
           'BCCD recipe, whole body trained (freeze_at=0)': recipe_step(replace(BCCD, freeze_at=0), bs, size, gen)}
    y = yolo_step(bs, size, gen)
    if y is not None: fns['YOLOv8n (ultralytics, its loss)'] = y
    else: print('# YOLOv8n: ultralytics is not installed (pip install ultralytics, bench only): skipped')
    ts = time_round_robin(fns, reps, warmup=1 if args.quick else 2)
    yolo = ts.get('YOLOv8n (ultralytics, its loss)')
    rows = [dict(step=k, step_ms=med(v)*1e3, img_s=bs/med(v),
                 vs_yolo=med([y_/t for y_,t in zip(yolo, v)]) if yolo else float('nan')) for k,v in ts.items()]
    print(f'## Training steps: batch {bs}, {size} px, median of {reps} in turns; x YOLOv8n = median over turns of '
          f"(YOLOv8n's step time / this step time)\n")
    print(table(rows, [('step','step'), ('step_ms','step ms'), ('img_s','images/s'), ('vs_yolo','x YOLOv8n')],
                dict(step_ms='.0f', img_s='.2f', vs_yolo='.2f')))
    write_json(args.json, dict(bench='recipe_speed', machine=info, quick=args.quick, batch=bs, size=size, reps=reps,
                               rows=rows, times=ts))

if __name__ == '__main__': main()
