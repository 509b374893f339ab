#!/usr/bin/env python
"""Head and body variants of `ssd-train`'s default model, for the decision the head-overhead target needs: the
overhead of head + loss over a backbone-only step (as `bench_train_step.py` measures it) for each variant, all
variants timed in turns in one process; and `--train`, which runs `ssd-train` with one variant.

    python bench/head_variants.py [--threads 1] [--reps 80] [--json out.json]
    python bench/head_variants.py --train VARIANT [ssd-train options...]      # e.g. --train wide --seed 1 --out run

(A model file written by a `--train` run records `tiny_resnet` as its body: `ssd-predict` would rebuild the default
body, not the variant's. The runs are for their `metrics.json`.)

The variants are experiments, not options of the package: they are built here by patching it.
* `default`: `ssd-train`'s model (tiny_resnet, widths 32,64,128; 3x3 output convs on every grid);
* `out8_1x1`: the output conv of the 8x8 grid (the head's largest conv) has a 1x1 kernel instead of 3x3;
* `wide`: tiny_resnet with widths 48,96,192 (2.2x the body's multiply-adds; the head unchanged);
* `wide_out8_1x1`: both.
"""
from __future__ import annotations
import functools, sys
from benchutil import *
import torch
from torch import nn
import ssd_nbs.cli as cli
import ssd_nbs.model as M

VARIANTS = {'default': dict(), 'out8_1x1': dict(out8_1x1=True), 'wide': dict(wide=True),
            'wide_out8_1x1': dict(wide=True, out8_1x1=True)}
WIDE = (48, 96, 192)

def patch(wide=False, out8_1x1=False):
    "Make `ssd_nbs` build the variant: `tiny_resnet` with wider stages, and/or a 1x1 output conv on the first grid"
    cli._ARCHS['tiny_resnet'] = functools.partial(M.tiny_resnet, widths=WIDE) if wide else M.tiny_resnet
    init = getattr(M.SSDHead, '_plain_init', M.SSDHead.__init__)
    M.SSDHead._plain_init = init
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if out8_1x1:
            c = self.outs[0].conv
            new = nn.Conv2d(c.in_channels, c.out_channels, 1)
            with torch.no_grad(): new.bias.copy_(c.bias)                   # the class scores' prior
            self.outs[0].conv = new
    M.SSDHead.__init__ = __init__

def step_fns(variant:str):
    "A full training step and a backbone-only step of `variant`, from `bench_train_step.py`, on the same batch for every variant"
    from bench_train_step import step_fns as train_step_fns
    from ssd_nbs.cli import RECIPE, detector_spec
    r = RECIPE
    spec = detector_spec('tiny_resnet', r['size'], r['grids'], r['zooms'], r['ratios'], nh=r['nh'], drop=r['drop'],
                         match_iou=r['match_iou'], gamma=r['gamma'])
    patch(**VARIANTS[variant])
    try:
        torch.manual_seed(0)
        fns,_,n_par = train_step_fns(dict(spec=spec, bs=16), torch.Generator().manual_seed(0))
        n_body = sum(o.numel() for o in cli.make_body(cli.get_arch('tiny_resnet'), pretrained=False).parameters())
    finally: patch()
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
    patch(**VARIANTS[variant])
    if not any(o in argv for o in ('--pretrained', '--no-pretrained')): argv = [*argv, '--no-pretrained']  # the patched body is not `tiny_resnet` itself
    sys.argv = ['ssd-train', *argv]
    cli.train_main()

if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--train': train(sys.argv[2], sys.argv[3:])
    else: main()
