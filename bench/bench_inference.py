#!/usr/bin/env python
"""Inference: milliseconds per image on CPU, batch 1 and batch 16, of the `ssd-train` default model (64 px) and of the
BCCD recipe's (320 px), against torchvision's `ssdlite320_mobilenet_v3_large` at the same sizes.

    python bench/bench_inference.py [--quick] [--json out.json]

From a batch of normalised image tensors to detections: the network, then decoding and non-maximum suppression
(ssd_nbs: `loss_func.activation` + `decode_preds`; SSDlite: its own transform and post-processing), both with score
threshold 0.3 (the `ssd-predict` default) and at most 100 detections per image; random weights (so the detections are
few for both; the network dominates). Image decoding and resizing are not timed.
"""
from __future__ import annotations
from benchutil import *
import torch
from torch import Tensor
from ssd_nbs.cli import RECIPE, detector_spec, build_detector
from ssd_nbs.loss import decode_preds
from bench_accuracy import RECIPES, ssdlite

def models(size:int):
    r = dict(RECIPES['shapes' if size == RECIPE['size'] else 'bccd'])
    spec = detector_spec('tiny_resnet', size, r['grids'], RECIPE['zooms'], RECIPE['ratios'], nh=r['nh'], stem_ks=r['stem_ks'],
                         fine_ks=r['fine_ks'], match_iou=r['match_iou'])
    det = build_detector(spec, ['#na#', 'a', 'b', 'c'])
    tv = ssdlite(3, size).eval()
    tv.score_thresh,tv.detections_per_img = 0.3, 100
    def ours(x):
        with torch.no_grad(): return decode_preds(*det.loss_func.activation(det.model(x)), 0.3, 0.5, 100)
    def theirs(x):
        with torch.no_grad(): return tv(list(x*0.25 + 0.5))                    # in [0,1], as torchvision wants them
    n_par = lambda m: sum(p.numel() for p in m.parameters())/1e6
    return dict(ssd_nbs=ours, torchvision=theirs), dict(ssd_nbs=n_par(det.model), torchvision=n_par(tv)), len(det.loss_func.anchors)

def main():
    args, info, reps, gen = setup_reps(__doc__, 'batches')
    rows = []
    for size in (RECIPE['size'], 320):
        fns,n_par,n_anc = models(size)
        for bs in (1, 16):
            x = torch.randn(bs, 3, size, size, generator=gen)
            r = reps if size*bs < 2000 else max(3, reps//2)
            ts = time_round_robin({k: (lambda f=f: f(x)) for k,f in fns.items()}, r, warmup=2, min_time=0 if args.quick else 3.)
            t = {k: med(v)/bs*1e3 for k,v in ts.items()}
            rows.append(dict(size=size, bs=bs, ours_ms=t['ssd_nbs'], tv_ms=t['torchvision'], tv_x=t['torchvision']/t['ssd_nbs'],
                             ours_params_M=n_par['ssd_nbs'], tv_params_M=n_par['torchvision'], n_anchors=n_anc,
                             reps=len(ts['ssd_nbs']), times=ts))
            print(f"{size} px, batch {bs}: ssd_nbs {t['ssd_nbs']:.2f} ms/image, SSDlite {t['torchvision']:.2f} ms/image", flush=True)
    cols = [('size','px'), ('bs','batch'), ('ours_ms','ssd_nbs ms/image'), ('tv_ms','SSDlite320 ms/image'),
            ('tv_x','SSDlite / ssd_nbs'), ('n_anchors','ssd_nbs anchors'), ('ours_params_M','ssd_nbs params (M)'),
            ('tv_params_M','SSDlite params (M)')]
    f = dict(ours_ms='.2f', tv_ms='.2f', tv_x='.1f', ours_params_M='.2f', tv_params_M='.2f')
    print(f"\nimages -> detections, median of {reps}+ batches taken in turns ({info['clock']} clock, "
          f"{info['torch_threads']} threads); ssd_nbs: tiny_resnet with the recipe of the size (64 px: ssd-train's "
          f"default; 320 px: BCCD's)\n")
    print(table(rows, cols, f))
    write_json(args.json, dict(bench='inference', machine=info, quick=args.quick, reps=reps, rows=rows))

if __name__ == '__main__': main()
