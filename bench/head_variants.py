#!/usr/bin/env python
"""Head and body variants of `ssd-train`'s default model, for the decision the head-overhead target needs: the
overhead of head + loss over a backbone-only step (as `bench_train_step.py` measures it) for each variant, all
variants timed in turns in one process; and `--train`, which runs `ssd-train` with one variant.

    python bench/head_variants.py [--threads 1] [--reps 80] [--json out.json]
    python bench/head_variants.py --train VARIANT [ssd-train options...]      # e.g. --train wide --seed 1 --out run

(A model file written by a `--train wide` run names the body `tiny_resnet_wide`, which only this script registers:
the runs are for their `metrics.json`.)

The wider body is an experiment, not an option of the package: this script adds it to `ssd_nbs.body.ARCHS`, the
bodies known by name, as `tiny_resnet_wide`. The other settings are `ssd-train` options (`--nh`, `--fine-ks`).
* `default`: `ssd-train`'s model (tiny_resnet, widths 32,64,128; head of 32 channels, a 1x1 output conv on the 8x8
  grid, 3x3 on the others);
* `fourth_round`: the default of the fourth round: 48 channels, the lesson's 3x3 output conv on every grid
  (`ssd-train --nh 48 --fine-ks 3`);
* `wide`: the default with tiny_resnet's widths 48,96,192 (2.2x the body's multiply-adds; the head unchanged);
* `wide_fourth_round`: both.
(The fourth round ran an earlier version of this script, with the fourth round's default as `default`, a 1x1 output
conv on the 8x8 grid as `out8_1x1` and the wider body: bench/results/head_variants*.)
"""
from __future__ import annotations
import functools, sys
from benchutil import *
import torch
from dataclasses import replace
from ssd_nbs.config import SHAPES
from ssd_nbs.body import ARCHS, tiny_resnet, make_body
from ssd_nbs.cli import train_main

VARIANTS = {'default': dict(), 'fourth_round': dict(nh=48, fine_ks=3), 'wide': dict(wide=True),
            'wide_fourth_round': dict(wide=True, nh=48, fine_ks=3)}
WIDE = (48, 96, 192)

ARCHS['tiny_resnet_wide'] = functools.partial(tiny_resnet, widths=WIDE)  # a body by name, for `ssd-train --arch`

def variant_cfg(variant:str):
    v = VARIANTS[variant]
    return replace(SHAPES, pretrained=False, arch='tiny_resnet_wide' if v.get('wide') else 'tiny_resnet',
                   nh=v.get('nh', SHAPES.nh), fine_ks=v.get('fine_ks', SHAPES.fine_ks))

def step_fns(variant:str):
    "A full training step and a backbone-only step of `variant`, from `bench_train_step.py`, on the same batch for every variant"
    from bench_train_step import step_fns as train_step_fns
    torch.manual_seed(0)
    fns,_,n_par = train_step_fns(dict(cfg=variant_cfg(variant)), torch.Generator().manual_seed(0))
    n_body = sum(o.numel() for o in make_body(ARCHS[variant_cfg(variant).arch], pretrained=False).parameters())
    return fns['full'], fns['backbone'], n_par, n_body

def main():
    args, info, reps, gen = setup_reps(__doc__, 'steps of each kind')
    fns,params = {},{}
    for v in VARIANTS:
        full,body,n_par,n_body = step_fns(v)
        fns[v],fns[v+' backbone'],params[v] = full,body,(n_par,n_body)
    ts = time_round_robin(fns, reps, warmup=2)
    rows = []
    for v in VARIANTS:
        t,tb = med(ts[v]), med(ts[v+' backbone'])
        rows.append(dict(variant=v, params_M=params[v][0]/1e6, body_M=params[v][1]/1e6, step_ms=t*1e3,
                         img_per_s=16/t, backbone_ms=tb*1e3, overhead=t/tb-1, times=dict(full=ts[v], backbone=ts[v+' backbone'])))
    print(f"training step of batch 16 at 64 px (forward + SSDLoss + backward + AdamW), median of {reps} taken in turns "
          f"with every variant ({info['clock']} clock, {info['torch_threads']} threads)\n")
    print(table(rows, [('variant','variant'), ('params_M','params (M)'), ('body_M','body params (M)'), ('img_per_s','images/s'),
                       ('step_ms','step ms'), ('backbone_ms','backbone step ms'), ('overhead','head+loss overhead')],
                dict(params_M='.2f', body_M='.2f', img_per_s='.0f', step_ms='.1f', backbone_ms='.1f',
                     overhead=lambda v: f'{v:+.0%}')))
    write_json(args.json, dict(bench='head_variants', machine=info, reps=reps, rows=rows))

def train(variant:str, argv:list):
    "Run `ssd-train` with `variant` (the remaining options are ssd-train's)"
    c = variant_cfg(variant)
    train_main([f'--arch={c.arch}', f'--nh={c.nh}', f'--fine-ks={c.fine_ks}', '--no-pretrained', *argv])

if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--train': train(sys.argv[2], sys.argv[3:])
    else: main()
