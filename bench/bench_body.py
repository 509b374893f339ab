"""The BCCD recipes' models at 320 pixels, on one CPU thread: training images/s and inference ms/image.

    python bench/bench_body.py            # BCCD (EfficientNet-Lite0 at stride 8), BCCD_SCRATCH (tiny_resnet), and the
                                          # sixth round's Lite0 at stride 16 with BCCD_SCRATCH's head
    python bench/bench_body.py --quick    # a few seconds: checks that it runs, numbers are rough

Each with its recipe's head (64 channels, 3x3 convs, 9 anchors a cell; grids 40..1 for BCCD, 20..1 for the others)
and `SSDLoss` matching from IoU 0.4; a training step is forward, loss, backward and an Adam step on a batch of random
images with 3 random boxes each; inference is a forward pass in eval mode without gradients. The kinds are timed in
turns, the median of `--reps`."""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import setup_reps, time_round_robin, med, table, write_json
import torch
from dataclasses import replace
from ssd_nbs.config import BCCD, BCCD_SCRATCH, build_ssd

SIZE = BCCD.size                                                       # both recipes: 320 px
BODIES = {'BCCD: efficientnet_lite0, stride 8, pretrained': BCCD,
          'BCCD_SCRATCH: tiny_resnet, stride 8, random': BCCD_SCRATCH,
          'efficientnet_lite0, stride 16, BCCD_SCRATCH head': replace(BCCD_SCRATCH, arch='efficientnet_lite0', stride=16)}

def build(cfg): return build_ssd(cfg, 3)                               # (model, loss) of that recipe

def batch(bs, g):
    xb = torch.randn(bs, 3, SIZE, SIZE, generator=g)                                    # (bs, 3, 320, 320)
    c = torch.rand(bs, 3, 2, generator=g)*1.4 - 0.8; wh = torch.rand(bs, 3, 2, generator=g)*0.3 + 0.1
    return xb, torch.cat([c - wh/2, c + wh/2], -1).clamp(-1, 1), torch.randint(1, 4, (bs, 3), generator=g)

def main():
    sys.argv += [] if any(a.startswith('--threads') for a in sys.argv) else ['--threads', '1']
    args, info, reps, g = setup_reps(__doc__, 'steps')
    bs = 2 if args.quick else 8
    xb, bb, lb = batch(bs, g)
    fns, rows = {}, []
    for name,kw in BODIES.items():
        model, loss = build(kw)
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        def train_step(model=model, loss=loss, opt=opt):
            model.train(); l = loss(model(xb), bb, lb); l.backward(); opt.step(); opt.zero_grad()
        def infer(model=model):
            model.eval()
            with torch.no_grad(): model(xb)
        fns[name+'/train'], fns[name+'/infer'] = train_step, infer
        rows.append(dict(body=name, params=sum(p.numel() for p in model.body.parameters())/1e6,
                         feat=f"{model.head.stem[1][0].in_channels} x {SIZE//(kw.stride or 8)}^2", anchors=len(loss.anchors)))
    ts = time_round_robin(fns, reps)
    for r in rows:
        r['train_img_s'] = bs/med(ts[r['body']+'/train']); r['infer_ms'] = 1000*med(ts[r['body']+'/infer'])/bs
    print(f'batch {bs}, {SIZE} px, median of {reps}\n')
    print(table(rows, [('body','body'), ('params','body params (M)'), ('feat','features'), ('anchors','anchors'),
                       ('train_img_s','training img/s'), ('infer_ms','inference ms/img')],
                dict(params='.2f', train_img_s='.2f', infer_ms='.1f')))
    write_json(args.json, dict(machine=info, batch=bs, size=SIZE, reps=reps, rows=rows, times=ts))

if __name__ == '__main__': main()
