#!/usr/bin/env python
"""Do the loss's fast paths matter at the recipes' anchor counts? A full training step (forward, loss, backward,
AdamW) of each recipe's model with `SSDLoss` as it is, against the same loss built from the plain references:
`greedy_match` for the matching and `bce_loss` (PyTorch's BCE with logits on one-hot targets) for the classes.

    python bench/bench_fast_paths.py [--quick] [--threads 1] [--clock cpu] [--json out.json]

Both losses give the same numbers (tests/test_references.py); only their time differs. Random images with 1-8 random
boxes each (BCCD has up to about 30: `--boxes`), as bench_train_step.py makes them.
"""
from __future__ import annotations
from benchutil import *
import torch
import torch.nn.functional as F
from dataclasses import replace
from ssd_nbs.core import plain
from ssd_nbs.config import SHAPES, BCCD_SCRATCH, build_ssd
from ssd_nbs.anchors import greedy_match
from ssd_nbs.loss import SSDLoss, bce_loss
from bench_train_step import batch
from benchutil import matches

class PlainSSDLoss(SSDLoss):
    "`SSDLoss` with the plain references: `greedy_match` and `bce_loss`"
    def parts(self, preds, bboxes, labels):
        box_act,clas,bboxes,anc,(b,a,g,l),n_pos = matches(self, preds, bboxes, labels, greedy_match)
        bb = (box_act[b,a] - self.coder.encode_coded(bboxes[b,g], self.coder.code(anc)[a])).abs().sum()
        targ = torch.zeros_like(clas); targ[b,a,l] = 1.
        return bb/n_pos, bce_loss(clas[...,1:], targ[...,1:], self.gamma, self.alpha)/n_pos

def step_fns(cfg, n_boxes:int, gen):
    model,fast = build_ssd(cfg, 3)
    slow = PlainSSDLoss(fast.anchors, cfg.match_iou, cfg.gamma, cfg.alpha)
    model = model.train().to(memory_format=torch.channels_last)
    x,bb,lbl = batch(cfg.bs, cfg.size, gen, n_max=n_boxes)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    def step(lf):
        def f():
            opt.zero_grad(); lf(model(x), bb, lbl).backward(); opt.step()
        return f
    with torch.no_grad(): p = [o.detach() for o in model(x)]
    p = [o.requires_grad_() for o in p]
    def loss_only(lf):
        def f():
            for o in p: o.grad = None
            lf(p, bb, lbl).backward()
        return f
    assert torch.allclose(torch.stack(fast.parts(p, bb, lbl)), torch.stack(slow.parts(p, bb, lbl)), rtol=1e-4)
    return dict(step_fast=step(fast), step_plain=step(slow), loss_fast=loss_only(fast), loss_plain=loss_only(slow)), len(fast.anchors)

def main():
    p = parser(__doc__.split('\n\n')[0])
    p.add_argument('--reps', type=int, default=None, help='timed steps of each kind (default 10; quick 2)')
    p.add_argument('--boxes', type=int, default=None, help='at most this many boxes an image (default: 8 shapes, 30 BCCD)')
    args = p.parse_args()
    info = setup(args)
    reps = args.reps or (2 if args.quick else 10)
    gen = torch.Generator().manual_seed(0)
    recipes = dict(shapes=(replace(SHAPES, pretrained=False), 8), bccd=(replace(BCCD_SCRATCH, pretrained=False), 30))
    if args.quick: recipes = dict(shapes=recipes['shapes'], bccd=(replace(BCCD_SCRATCH, pretrained=False, size=128, grids=(8,4,2,1)), 30))
    rows = []
    for name,(cfg,nb) in recipes.items():
        fns,n_anc = step_fns(cfg, args.boxes or nb, gen)
        ts = time_round_robin(fns, reps, warmup=1)
        t = {k: med(v) for k,v in ts.items()}
        rows.append(dict(recipe=name, size=cfg.size, bs=cfg.bs, anchors=n_anc, step_ms=t['step_fast']*1e3,
                         plain_step_ms=t['step_plain']*1e3, step_x=t['step_plain']/t['step_fast'],
                         loss_ms=t['loss_fast']*1e3, plain_loss_ms=t['loss_plain']*1e3,
                         loss_x=t['loss_plain']/t['loss_fast'], times=ts))
        print(f"{name}: step {t['step_fast']*1e3:.1f} ms (plain {t['step_plain']*1e3:.1f}), loss {t['loss_fast']*1e3:.2f} ms "
              f"(plain {t['loss_plain']*1e3:.2f})", flush=True)
    print(f"\nmedian of {reps} steps taken in turns ({info['clock']} clock, {info['torch_threads']} threads)\n")
    print(table(rows, [('recipe','recipe'), ('size','px'), ('bs','bs'), ('anchors','anchors'), ('step_ms','step ms'),
                       ('plain_step_ms','step ms, plain loss'), ('step_x','plain / fast step'), ('loss_ms','loss ms'),
                       ('plain_loss_ms','plain loss ms'), ('loss_x','plain / fast loss')],
                dict(step_ms='.1f', plain_step_ms='.1f', step_x='.2f', loss_ms='.2f', plain_loss_ms='.2f', loss_x='.1f')))
    write_json(args.json, dict(bench='fast_paths', machine=info, quick=args.quick, reps=reps, rows=rows))

if __name__ == '__main__': main()
