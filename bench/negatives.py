"""Do images without objects (negatives) lower background errors without hurting recall?

    python bench/negatives.py --jsonl runs.jsonl    # the run of bench/RESULTS.md: 3 arms x 3 seeds, 80 CPU s each
    python bench/negatives.py --table runs.jsonl    # the table of the runs in that file (mean, min-max over seeds)
    python bench/negatives.py --quick               # a check that it runs: small sets, 1 epoch, 1 seed

The data: synthetic shapes (`make_shapes`, 64 px, 1 to 4 shapes an image) where only circles and squares are classes;
triangles are clutter, drawn in the images but not annotated (a detector must learn to leave them alone). An image
holding a circle or a square is a positive; an image holding only triangles is a negative of that very clutter,
annotated with no object.

Three arms, trained the same way (the shapes recipe: `tiny_resnet` from scratch, 64 px, one-cycle, one thread):
  * `positives`: the training positives alone;
  * `+negatives`: the same positives and negatives (20% of the images), the same epochs (so 25% more steps): what a
    user does who adds background images to a data set;
  * `+negatives/same-steps`: the same images, fewer epochs, so the same number of optimiser steps as `positives`
    (and 20% fewer passes over the positives).
Both are scored on one held-out test set of positives and negatives: mAP@0.5; mAP of the positive images alone;
recall of the objects at the model's score threshold (0.3); TIDE's background errors (`25_report`'s
`error_report`: count and dAP, detections from 0.05); and what a user sees, detections at 0.3 that are background
(on any image), and those on the negative images, per image.
"""
import sys, time, json, argparse, warnings, statistics
from pathlib import Path
from dataclasses import replace
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import machine_info
import torch
from torchvision.ops import box_iou
from fastai.vision.all import set_seed
from ssd_nbs.data import make_shapes, ssd_dls
from ssd_nbs.readers import voc_items
from ssd_nbs.config import SHAPES
from ssd_nbs.learner import ssd_learner
from ssd_nbs.metrics import mean_ap
from ssd_nbs.errors import tide_errors, error_counts
from ssd_nbs.report import error_report                 # also patches `SSDLearner.error_preds`

CLASSES = ['circle', 'square']                          # triangles: clutter, not a class

def split_items(path, n_train:int, n_neg:int, n_test:int, n_test_neg:int):
    "Train positives, train negatives, test items (positives then negatives) of the shapes at `path`"
    files, targets = voc_items(path)
    pos, neg = [], []
    for f,(bs,ls) in zip(files, targets):
        keep = [(b,l) for b,l in zip(bs, ls) if l in CLASSES]
        (pos if keep else neg).append((f, ([b for b,_ in keep], [l for _,l in keep])))
    assert len(pos) >= n_train + n_test and len(neg) >= n_neg + n_test_neg, (len(pos), len(neg))
    unzip = lambda rows: ([f for f,_ in rows], [t for _,t in rows])
    test = pos[n_train:n_train+n_test] + neg[n_neg:n_neg+n_test_neg]
    return unzip(pos[:n_train]), unzip(neg[:n_neg]), unzip(test)

def recall_at(preds, targs, thresh:float, iou:float=0.5)->float:
    "Share of the objects found by a detection of their class scoring `thresh` or more (greedy, best score first)"
    found = n = 0
    for (pb,pl,ps),(tb,tl) in zip(preds, targs):
        n += len(tl)
        for c in set(tl):
            d = (pl == c) & (ps.numpy() >= thresh)
            db, ds, g = pb[torch.as_tensor(d)], ps[torch.as_tensor(d)], tb[torch.as_tensor(tl == c)]
            if not len(db): continue
            m, used = box_iou(db[ds.argsort(descending=True)], g), torch.zeros(len(g), dtype=torch.bool)
            for row in m:
                row = row.masked_fill(used, -1)
                if row.max() >= iou: used[row.argmax()] = True
            found += int(used.sum())
    return found / max(n, 1)

def above(preds, thresh): return [(b[s >= thresh], l[(s >= thresh).numpy()], s[s >= thresh]) for b,l,s in preds]

def run(arm:str, tr, te, epochs:int, seed:int, bs:int)->dict:
    "Train the shapes recipe on `tr`, score it on `te`"
    set_seed(seed, reproducible=True)
    cfg = replace(SHAPES, bs=bs, epochs=epochs)
    dls = ssd_dls(tr, te, size=cfg.size, bs=bs, vocab=CLASSES, cache=True)
    learn = ssd_learner(dls, cfg)
    c0 = time.process_time()
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore'); learn.fit_one_cycle(epochs, cfg.lr)
    cpu = time.process_time() - c0
    steps = epochs * len(dls.train)
    preds, targs, sizes, _ = learn.error_preds(dls.valid)              # detections scoring 0.05 or more
    rep = error_report(preds, targs, CLASSES, sizes)
    is_neg = [len(t) == 0 for _,t in targs]
    pos_i = [i for i,n in enumerate(is_neg) if not n]
    hi = above(preds, cfg.score_thresh)
    bkg_hi = error_counts(tide_errors(hi, targs, CLASSES))['Bkg']
    return dict(arm=arm, seed=seed, epochs=epochs, steps=steps, n_train=len(tr[0]), n_train_neg=sum(not b for b,_ in tr[1]),
                mAP=rep['mAP'], mAP_pos=mean_ap([preds[i] for i in pos_i], [targs[i] for i in pos_i])[0],
                recall=recall_at(preds, targs, cfg.score_thresh), bkg_count=rep['errors']['Bkg']['count'],
                bkg_dAP=rep['errors']['Bkg']['dAP'], bkg_at_thresh=bkg_hi,
                fp_per_neg_image=sum(len(p[2]) for p,n in zip(hi, is_neg) if n) / max(sum(is_neg), 1),
                train_cpu_seconds=round(cpu, 1))

COLS = [('mAP', 'mAP@0.5', '.3f'), ('mAP_pos', 'mAP positives', '.3f'), ('recall', 'recall@0.3', '.3f'),
        ('bkg_count', 'Bkg errors', '.1f'), ('bkg_dAP', 'Bkg dAP', '.3f'), ('bkg_at_thresh', 'Bkg dets@0.3', '.1f'),
        ('fp_per_neg_image', 'dets@0.3 per negative image', '.2f'), ('train_cpu_seconds', 'train CPU s', '.0f')]

def table(res:list)->str:
    "Markdown table: mean and spread (min-max) over the seeds of each arm"
    out = ['| arm | seeds | train images (negatives) | steps | ' + ' | '.join(h for _,h,_ in COLS) + ' |', '|---' * (len(COLS)+4) + '|']
    order = ['positives', '+negatives', '+negatives/same-steps']
    for arm in sorted(dict.fromkeys(r['arm'] for r in res), key=lambda o: order.index(o) if o in order else len(order)):
        rs = [r for r in res if r['arm'] == arm]
        def cell(k, fmt):
            v = [r[k] for r in rs]
            m = format(statistics.mean(v), fmt)
            return m if len(v) == 1 else f"{m} ({format(min(v), fmt)}-{format(max(v), fmt)})"
        out.append(f"| {arm} | {len(rs)} | {rs[0]['n_train']} ({rs[0]['n_train_neg']}) | {rs[0]['steps']} | "
                   + ' | '.join(cell(k, f) for k,_,f in COLS) + ' |')
    return '\n'.join(out)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='small sets, 1 epoch, 1 seed: a check that it runs')
    p.add_argument('--seeds', default='0,1,2', help='training seeds (the data is drawn once, with seed 7)')
    p.add_argument('--epochs', type=int, default=20, help='epochs of the positives-only arm; the other gets the same steps')
    p.add_argument('--bs', type=int, default=32)
    p.add_argument('--data', default='/tmp/ssd_nbs_negatives', help='folder for the drawn shapes')
    p.add_argument('--arms', default='positives,+negatives,+negatives/same-steps', help='comma-separated, of these three')
    p.add_argument('--jsonl', default=None, help='append each run, as one JSON line, to this file')
    p.add_argument('--table', default=None, metavar='JSONL', help='print the table of the runs in this file, train nothing')
    a = p.parse_args()
    if a.table:
        print(table([json.loads(l) for l in Path(a.table).read_text().splitlines() if l.strip()])); sys.exit()
    torch.set_num_threads(1)
    n_train, n_neg, n_test, n_test_neg = (64, 16, 32, 8) if a.quick else (800, 200, 300, 80)
    data = make_shapes(Path(a.data)/'shapes', n=2400, size=64, n_max=4, seed=7)
    pos, neg, te = split_items(data, n_train, n_neg, n_test, n_test_neg)
    both = (pos[0] + neg[0], pos[1] + neg[1])
    ea = 1 if a.quick else a.epochs
    eb = max(1, round(ea * (n_train // a.bs) / ((n_train + n_neg) // a.bs)))   # the same number of steps
    seeds = [0] if a.quick else [int(o) for o in a.seeds.split(',')]
    print(f'# test: {n_test} positives, {n_test_neg} negatives; {ea} epochs, or {eb} for the same steps', flush=True)
    arms = {'positives': (pos, ea), '+negatives': (both, ea), '+negatives/same-steps': (both, eb)}
    res, info = [], machine_info()
    for s in seeds:
        for arm in a.arms.split(','):
            tr, e = arms[arm]
            res.append(run(arm, tr, te, e, s, a.bs))
            print(json.dumps(res[-1]), flush=True)
            if a.jsonl:
                with open(a.jsonl, 'a') as fh: fh.write(json.dumps({**res[-1], 'cpu': info['cpu'], 'git': info['git']}) + '\n')
    print(table(res))
