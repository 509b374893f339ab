#!/usr/bin/env python
"""Where the time of one loss goes: torch.profiler's table of forward + backward of `SSDLoss` (or the loop, or
torchvision's loss) on the inputs of `bench_loss.py`.

    python bench/profile_loss.py [--which ssd_nbs|loop|torchvision] [--anchors 0|1|2] [--bs 32] [--rows 25] [--quick]
"""
from __future__ import annotations
from benchutil import *
import torch
from torch.profiler import profile, ProfilerActivity
from bench_loss import anchor_sets, make_targets, make_fns

def main():
    p = parser(__doc__.split('\n\n')[0])
    p.add_argument('--which', default='ssd_nbs', choices=['ssd_nbs', 'loop', 'torchvision'])
    p.add_argument('--anchors', type=int, default=2, help='0: course 189, 1: ~2,000, 2: SSD300 8,732')
    p.add_argument('--bs', type=int, default=32)
    p.add_argument('--classes', type=int, default=20)
    p.add_argument('--reps', type=int, default=5)
    p.add_argument('--rows', type=int, default=25)
    p.add_argument('--sort', default='self_cpu_time_total')
    args = p.parse_args()
    if args.quick: args.anchors,args.bs,args.reps,args.rows = 0,4,1,5          # a check that it runs
    setup(args)
    name,anc = list(anchor_sets().items())[args.anchors]
    gen = torch.Generator().manual_seed(0)
    bb,lbl,_ = make_targets(args.bs, args.classes, gen)
    preds = (torch.randn(args.bs, len(anc), 4, generator=gen).requires_grad_(),
             torch.randn(args.bs, len(anc), args.classes+1, generator=gen).requires_grad_())
    f = make_fns(preds, bb, lbl, anc, args.classes)[args.which]
    f(); f()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.reps): f()
    print(f'{args.which}, {name} ({len(anc)} anchors), bs {args.bs}, {args.reps} runs:\n')
    print(prof.key_averages().table(sort_by=args.sort, row_limit=args.rows))

if __name__ == '__main__': main()
