#!/usr/bin/env python
"""Training step: images per second of a full training step (forward, `SSDLoss`, backward, optimizer step) of the
model `ssd-train` builds by default, and how much the SSD head and loss add to a step of the backbone alone (the
overhead ratio). Also resnet18 bodies at 128 and 224 pixels.

    python bench/bench_train_step.py [--quick] [--json out.json]

overhead = (time of a full step) / (time of a step of the backbone alone, with a trivial loss) - 1; the loss share
is the time of `SSDLoss` forward + backward on the same predictions, alone. Pure PyTorch steps on random images with
1-8 random boxes each (the shapes data set has at most 8): no data loading, no fastai callbacks. The model is in
channels-last memory layout, as `ssd-train` trains it (fastai's `ChannelsLast` callback).
"""
from __future__ import annotations
from benchutil import *
import torch
from torch import nn
from dataclasses import replace
from ssd_nbs.config import SHAPES, build_ssd
from ssd_nbs.model import OutConv, flatten_conv

VOCAB = ['#na#', 'circle', 'square', 'triangle']

def configs(quick:bool)->list:
    c = replace(SHAPES, pretrained=False)
    default = dict(name=f"default: {c.arch} {c.size}px, grids 8,4,2,1, nh {c.nh}, {c.stem_ks}x{c.stem_ks} first conv, "
                        f"{c.fine_ks}x{c.fine_ks} output conv on the 8x8 grid, one output conv per grid, no dropout", cfg=c)
    fourth = dict(name="fourth round's default: the same with nh 48 and the lesson's 3x3 output conv on every grid",
                  cfg=replace(c, nh=48, fine_ks=3))
    second = dict(name="second round's default: also two output convs per grid and dropout 0.1",
                  cfg=replace(fourth['cfg'], drop=0.1), two_convs=True)
    first = dict(name="first round's default: also the lesson's 3x3 first conv and nh 64",
                 cfg=replace(second['cfg'], nh=64, stem_ks=3), two_convs=True)
    res = [default, fourth, second, first]
    for size in ((128,) if quick else (128, 224)):
        res.append(dict(name=f'resnet18 {size}px, grids 4,2,1, nh 256', cfg=replace(c, arch='resnet18', size=size,
                        grids=(4,2,1), nh=256, drop=0.1, stem_ks=1, fine_ks=3, match_iou=0.5)))
    return res

class TwoConvOut(nn.Module):
    "The output block as the lesson writes it (and `ssd_nbs` had it before): one conv for the boxes, one for the classes"
    def __init__(self, o:OutConv):
        super().__init__()
        ni,n = o.conv.in_channels, o.conv.out_channels
        self.k,self.bbox,self.clas = o.k, nn.Conv2d(ni, o.n_box, 3, padding=1), nn.Conv2d(ni, n-o.n_box, 3, padding=1)
        with torch.no_grad():
            for p in ('weight', 'bias'):
                w = getattr(o.conv, p)
                getattr(self.bbox, p).copy_(w[:o.n_box]); getattr(self.clas, p).copy_(w[o.n_box:])
    def forward(self, x): return flatten_conv(self.bbox(x), self.k), flatten_conv(self.clas(x), self.k)

def batch(bs, size, gen, n_cls=3, n_max=8):
    x = torch.randn(bs, 3, size, size, generator=gen)
    n = torch.randint(1, n_max+1, (bs,), generator=gen)
    G = int(n.max())
    ctr = torch.rand(bs, G, 2, generator=gen)*1.6 - 0.8
    wh = torch.rand(bs, G, 2, generator=gen)*0.5 + 0.1
    bb = torch.cat([ctr-wh/2, ctr+wh/2], -1).clamp(-1, 1)
    real = torch.arange(G)[None] < n[:,None]
    return x, bb*real[...,None], torch.randint(1, n_cls+1, (bs, G), generator=gen)*real

def step_fns(run:dict, gen, arch=None): # `run`: name, cfg (an `SSDConfig`) and two_convs; `arch`: another body
    model,loss_func = build_ssd(run['cfg'], len(VOCAB)-1, arch)
    if run.get('two_convs'): model.head.outs = nn.ModuleList(TwoConvOut(o) for o in model.head.outs)
    model = model.train().to(memory_format=torch.channels_last)          # as ssd-train runs it
    x,bb,lbl = batch(run['cfg'].bs, run['cfg'].size, gen)
    opt_full = torch.optim.AdamW(model.parameters(), lr=1e-4)
    opt_body = torch.optim.AdamW(model.body.parameters(), lr=1e-4)
    def full():
        opt_full.zero_grad()
        loss_func(model(x), bb, lbl).backward()
        opt_full.step()
    def backbone():
        opt_body.zero_grad()
        model.body(x).mean().backward()                                       # the body's features, a trivial loss
        opt_body.step()
    with torch.no_grad(): p = [o.detach() for o in model(x)]
    p = [o.requires_grad_() for o in p]
    def loss_only():
        for o in p: o.grad = None
        loss_func(p, bb, lbl).backward()
    n_anc = len(loss_func.anchors)
    return dict(full=full, backbone=backbone, loss=loss_only), n_anc, sum(o.numel() for o in model.parameters())

def main():
    args, info, reps, gen = setup_reps(__doc__, 'steps')
    rows = []
    for cfg in configs(args.quick):
        fns,n_anc,n_par = step_fns(cfg, gen)
        r = reps if cfg['cfg'].size < 200 else max(3, reps//2)
        ts = time_round_robin(fns, r, warmup=2, min_time=0 if args.quick else 5.)
        t = {k: med(v) for k,v in ts.items()}
        bs = cfg['cfg'].bs
        rows.append(dict(config=cfg['name'], bs=bs, n_anchors=n_anc, params_M=n_par/1e6, step_ms=t['full']*1e3,
                         img_per_s=bs/t['full'], backbone_ms=t['backbone']*1e3, loss_ms=t['loss']*1e3,
                         head_ms=(t['full']-t['backbone']-t['loss'])*1e3, overhead=t['full']/t['backbone']-1,
                         loss_share=t['loss']/t['full'], reps=len(ts['full']), cfg=cfg['cfg'].to_dict(), times=ts))
        print(f"{cfg['name']}: step {t['full']*1e3:.1f} ms, backbone {t['backbone']*1e3:.1f} ms, "
              f"loss {t['loss']*1e3:.1f} ms", flush=True)
    cols = [('config','model'), ('bs','bs'), ('n_anchors','anchors'), ('params_M','params (M)'), ('img_per_s','images/s'),
            ('step_ms','step ms'), ('backbone_ms','backbone step ms'), ('head_ms','head ms'), ('loss_ms','loss ms'),
            ('overhead','head+loss overhead'), ('loss_share','loss share of step')]
    f = dict(params_M='.2f', img_per_s='.1f', step_ms='.1f', backbone_ms='.1f', head_ms='.1f', loss_ms='.2f',
             overhead=lambda v: f'{v:+.0%}', loss_share=lambda v: f'{v:.1%}')
    print(f"\ntraining step = forward + SSDLoss + backward + AdamW step; median of {reps}+ steps taken in turns "
          f"({info['clock']} clock, {info['torch_threads']} threads). head ms = step - backbone step - loss.\n")
    print(table(rows, cols, f))
    write_json(args.json, dict(bench='train_step', machine=info, quick=args.quick, reps=reps, rows=rows))

if __name__ == '__main__': main()
