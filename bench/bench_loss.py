#!/usr/bin/env python
"""Loss and matching: forward + backward time of `SSDLoss` against the lesson's per-image loop (`ssd_loss_loop`) and
torchvision's SSD loss (`SSD.compute_loss` with its `box_iou` + `SSDMatcher` matching), on the same anchors, targets and
activations, for several batch sizes and anchor counts. Also counts the FLOPs and bytes of the dense work and compares
the time with the floor they set on this machine.

    python bench/bench_loss.py [--quick] [--json out.json]
"""
from __future__ import annotations
import math, types
from benchutil import *
import torch
import torch.nn.functional as F
from torchvision.ops import boxes as box_ops
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.ssd import SSD
from ssd_nbs.anchors import make_anchors
from ssd_nbs.loss import ssd_loss_loop
from ssd_nbs.loss import SSDLoss

IMG = 300   # pixels: torchvision works in pixels, ssd_nbs in [-1,1]; the size only scales the boxes

# ---------------------------------------------------------------------------------------------------------------------
# anchors
def ssd300_anchors()->torch.Tensor:
    """SSD300's 8,732 default boxes built with `make_anchors`: grids 38,19,10,5,3,1 with 4,6,6,6,4,4 boxes per cell, the
    scales of torchvision's `ssd300_vgg16` (0.07 ... 1.05 of the image) and aspect ratios 1, 2, 1/2 (and 3, 1/3), plus
    the extra square box of scale sqrt(s_k*s_k+1). `make_anchors` sizes boxes relative to a grid cell, so
    zoom = scale * grid. Each grid is two `make_anchors` calls (the extra square has its own zoom), concatenated: the
    same boxes as SSD300's, in a different order, which no loss depends on."""
    grids, ks = (38,19,10,5,3,1), (4,6,6,6,4,4)
    scales = (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05)
    res = []
    for i,(g,k) in enumerate(zip(grids, ks)):
        rs = [(1.,1.), (2**.5, 2**-.5), (2**-.5, 2**.5)] + ([(3**.5, 3**-.5), (3**-.5, 3**.5)] if k == 6 else [])
        res.append(make_anchors((g,), (scales[i]*g,), rs))
        res.append(make_anchors((g,), (math.sqrt(scales[i]*scales[i+1])*g,), [(1.,1.)]))
    return torch.cat(res)

R3 = ((1.,1.), (1.,.5), (.5,1.))
def anchor_sets()->dict:
    return {'course (4,2,1) k=9': make_anchors((4,2,1), (0.7,1.,1.3), R3),
            'mid (16,8,4,2,1) k=6': make_anchors((16,8,4,2,1), (1.,1.4), R3),
            'SSD300 layout k=4/6': ssd300_anchors()}

# ---------------------------------------------------------------------------------------------------------------------
# data
def make_targets(bs:int, n_cls:int, gen, mean_gt:int=10, p_empty:float=0.1):
    """Padded targets as `ssd_dls` makes them: ~`mean_gt` boxes per image (uniform in mean_gt+-5), a fraction
    `p_empty` of the images with none; box sides log-uniform in 5%..60% of the image; padding zeros with label 0"""
    n = torch.randint(mean_gt-5, mean_gt+6, (bs,), generator=gen)
    n[torch.rand(bs, generator=gen) < p_empty] = 0
    if bs > 1: n[0] = 0                                                       # at least one empty image
    G = max(int(n.max()), 1)
    ctr = torch.rand(bs, G, 2, generator=gen)*1.8 - 0.9
    wh = torch.exp(torch.empty(bs, G, 2).uniform_(math.log(0.1), math.log(1.2), generator=gen))  # in [-1,1] units
    bb = torch.cat([ctr-wh/2, ctr+wh/2], -1).clamp(-1, 1)
    lbl = torch.randint(1, n_cls+1, (bs, G), generator=gen)
    real = torch.arange(G)[None] < n[:,None]
    return bb*real[...,None], lbl*real, n

def tv_targets(bb, lbl):
    "The same targets as torchvision wants them: a list of dicts of boxes in pixels and labels, no padding"
    return [dict(boxes=((b[l>0]+1)/2*IMG).contiguous(), labels=l[l>0]) for b,l in zip(bb, lbl)]

# ---------------------------------------------------------------------------------------------------------------------
# the three losses: each call is forward + backward, with matching
TV = types.SimpleNamespace(box_coder=det_utils.BoxCoder(weights=(10., 10., 5., 5.)), neg_to_pos_ratio=3)
TV_MATCHER = det_utils.SSDMatcher(0.5)

def tv_loss(box_act, clas, targets, anchors_px):
    "torchvision's `SSD.forward` in training mode, after the head: match each image, then `SSD.compute_loss`"
    anchors = [anchors_px]*len(targets)                                       # the anchor generator's list
    matched = []
    for anc,t in zip(anchors, targets):
        if t['boxes'].numel() == 0: matched.append(torch.full((anc.size(0),), -1, dtype=torch.int64)); continue
        matched.append(TV_MATCHER(box_ops.box_iou(t['boxes'], anc)))
    l = SSD.compute_loss(TV, targets, dict(bbox_regression=box_act, cls_logits=clas), anchors, matched)
    return l['bbox_regression'] + l['classification']

def make_fns(preds, bb, lbl, anc, n_cls):
    box_act,clas = preds
    ours = SSDLoss(anc)
    tgts, anc_px = tv_targets(bb, lbl), ((anc+1)/2*IMG).contiguous()
    def run(f):
        def g():
            box_act.grad = clas.grad = None
            f().backward()
        return g
    return {'ssd_nbs': run(lambda: ours(preds, bb, lbl)),
            'loop': run(lambda: sum(ssd_loss_loop(preds, bb, lbl, anc))),
            'torchvision': run(lambda: tv_loss(box_act, clas, tgts, anc_px))}

# ---------------------------------------------------------------------------------------------------------------------
# the floor set by the dense work
def dense_counts(bs, G, n_anc, n_cls)->dict:
    """The work any implementation of this loss must do: the IoU of every (object, anchor) pair (`pairs`, ~14 simple
    flops each: 4 min/max, 3 sub, 2 clamp, 2 mul, 1 add, 1 div, and its max over the objects), two transcendental
    functions of every class score (`scores`: log(1+e^x) forward, sigmoid backward), and `bytes`: one read of the
    activations and one write of their gradients (4 bytes each way)"""
    return dict(pairs=bs*G*n_anc, scores=bs*n_anc*n_cls, bytes=2*4*bs*n_anc*(n_cls+1+4))

def machine_rates(quick)->dict:
    """What this machine does per second with the thread count in use: `bandwidth` (bytes/s of a large copy),
    `sigmoid` (scores/s of torch.sigmoid on a large tensor: one exp and one division each, the cheapest transcendental
    pass PyTorch has) and `simple` (flops/s of torch.minimum on a tensor that stays in cache)"""
    n = 2**22 if quick else 2**24
    src,dst = torch.randn(n), torch.empty(n)
    reps = 3 if quick else 10
    t = min(time_round_robin({'c': lambda: dst.copy_(src)}, reps)['c'])
    bw = 2*4*n/t
    t = min(time_round_robin({'s': lambda: torch.sigmoid(src, out=dst)}, reps)['s'])
    sig = n/t
    m = 2**18
    a,b,c = torch.randn(m), torch.randn(m), torch.empty(m)
    def mins():
        for _ in range(20): torch.minimum(a, b, out=c)
    t = min(time_round_robin({'m': mins}, reps)['m'])
    return dict(bandwidth=bw, sigmoid=sig, simple=20*m/t)

def floor_time(c:dict, r:dict)->float:
    "Seconds the dense work needs at least: compute (transcendentals + IoU flops) or memory traffic, whichever is more"
    return max(c['bytes']/r['bandwidth'], 2*c['scores']/r['sigmoid'] + 14*c['pairs']/r['simple'])

# ---------------------------------------------------------------------------------------------------------------------
def check_equal(anc, n_cls, gen):
    "The three losses see the same inputs; ours and the loop must agree (in float64)"
    bb,lbl,_ = make_targets(6, n_cls, gen)
    preds = (torch.randn(6, len(anc), 4, generator=gen).double(), torch.randn(6, len(anc), n_cls+1, generator=gen).double())
    a,b = torch.stack(SSDLoss(anc).parts(preds, bb.double(), lbl)), torch.stack(ssd_loss_loop(preds, bb.double(), lbl, anc))
    assert torch.allclose(a, b, rtol=1e-6, atol=1e-6), (a-b)

def main():
    p = parser(__doc__.split('\n\n')[0])
    p.add_argument('--classes', type=int, default=20, help='object classes, without background (default 20, as VOC)')
    p.add_argument('--bs', default=None, help='batch sizes, e.g. 8,32,128')
    p.add_argument('--reps', type=int, default=None, help='timed repetitions of each loss (default 10; quick 3)')
    args = p.parse_args()
    info = setup(args)
    bss = [int(o) for o in args.bs.split(',')] if args.bs else ([8, 32] if args.quick else [8, 32, 128])
    reps = args.reps or (3 if args.quick else 10)
    n_cls, gen = args.classes, torch.Generator().manual_seed(0)
    rates = machine_rates(args.quick)
    rows = []
    for name,anc in anchor_sets().items():
        check_equal(anc, n_cls, gen)
        for bs in bss:
            bb,lbl,n = make_targets(bs, n_cls, gen)
            preds = (torch.randn(bs, len(anc), 4, generator=gen).requires_grad_(),
                     torch.randn(bs, len(anc), n_cls+1, generator=gen).requires_grad_())
            fns = make_fns(preds, bb, lbl, anc, n_cls)
            r = reps if bs*len(anc) < 1e6 else max(3, reps//2)
            ts = time_round_robin(fns, r, warmup=1, min_time=0 if args.quick else 2.)
            t = {k: med(v) for k,v in ts.items()}
            c = dense_counts(bs, bb.shape[1], len(anc), n_cls)
            floor = floor_time(c, rates)
            rows.append(dict(anchors=name, n_anchors=len(anc), bs=bs, gt_per_img=float(n.float().mean()),
                             empty_imgs=int((n == 0).sum()), pad_gt=bb.shape[1],
                             ours_ms=t['ssd_nbs']*1e3, loop_ms=t['loop']*1e3, tv_ms=t['torchvision']*1e3,
                             loop_x=t['loop']/t['ssd_nbs'], tv_x=t['torchvision']/t['ssd_nbs'],
                             mpairs=c['pairs']/1e6, mscores=c['scores']/1e6, mbyte=c['bytes']/1e6, floor_ms=floor*1e3,
                             ours_floor=t['ssd_nbs']/floor, loop_floor=t['loop']/floor,
                             reps=len(ts['ssd_nbs']), times=ts))
            print(f"{name:22s} bs {bs:4d}: ours {t['ssd_nbs']*1e3:8.2f} ms, loop {t['loop']*1e3:8.2f} ms, "
                  f"torchvision {t['torchvision']*1e3:8.2f} ms", flush=True)
    cols = [('anchors','anchors'), ('n_anchors','n'), ('bs','bs'), ('gt_per_img','gt/img'), ('ours_ms','SSDLoss ms'),
            ('loop_ms','loop ms'), ('tv_ms','torchvision ms'), ('loop_x','loop / ours'), ('tv_x','torchvision / ours'),
            ('mpairs','IoU pairs (M)'), ('mscores','scores (M)'), ('mbyte','MB in+out'), ('floor_ms','floor ms'),
            ('ours_floor','SSDLoss / floor'), ('loop_floor','loop / floor')]
    f = dict(gt_per_img='.1f', ours_ms='.2f', loop_ms='.2f', tv_ms='.2f', loop_x='.1f', tv_x='.1f', mpairs='.2f',
             mscores='.2f', mbyte='.1f', floor_ms='.2f', ours_floor='.1f', loop_floor='.1f')
    print(f"\nforward + backward with matching, median of {reps}+ runs taken in turns ({info['clock']} clock, "
          f"{info['torch_threads']} threads); {n_cls} classes; ~10 objects an image, some images with none.\n"
          f"floor = max(MB / {rates['bandwidth']/1e9:.1f} GB/s (copy), 2 x scores / {rates['sigmoid']/1e6:.0f} M/s "
          f"(torch.sigmoid) + 14 x pairs / {rates['simple']/1e9:.1f} GFLOP/s (torch.minimum in cache))\n")
    print(table(rows, cols, f))
    write_json(args.json, dict(bench='loss', machine=info, quick=args.quick, classes=n_cls, reps=reps, rates=rates,
                               rows=rows))

if __name__ == '__main__': main()
