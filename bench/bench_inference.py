#!/usr/bin/env python
"""Inference: milliseconds per image on CPU of the `ssd-train` default model (64 px) and of the BCCD recipe's (320 px),
batch 1 and batch 16, on 1 and 2 threads: PyTorch eager, the same detector exported to ONNX and run by onnxruntime,
and torchvision's `ssdlite320_mobilenet_v3_large` at the same sizes.

    python bench/bench_inference.py [--quick] [--json out.json] [--thread-counts 1,2]

From a batch of normalised image tensors to detections: the network, then decoding and non-maximum suppression
(ssd_nbs eager: `loss_func.activation` + `decode_preds`; onnxruntime: the file of `export_onnx`, whose graph holds
both; SSDlite: its own transform and post-processing), all with score threshold 0.3 (the `ssd-predict` default) and
at most 100 detections per image; random weights (so the detections are few for all; the network dominates). Image
decoding and resizing are not timed. `--quick` (what CI runs): 64 px, batch 1, one thread, 3 batches each, and a check
that onnxruntime gives the eager detections; its numbers are rough. The threads of each row are set for PyTorch and
onnxruntime alike (the header's count is only the starting one).

Then `ssd-predict` itself, end to end, as a user runs it (a new process each time; the BCCD recipe's model, random
weights, `--score-thresh 0.01 --max-det 20` so that each image gets about as many boxes drawn as a BCCD image has
cells): start-up to the first image (the whole command on one 640x480 image) with each engine; peak RSS on one
8000x6000 JPEG against one 640x480; images per second and peak RSS on folders of 100 and 2,000 BCCD images
(640x480, copied from `/work/shared/data/BCCD` or `$BCCD`), reading and drawing included; and the cost of
rewriting detections.json from detections.jsonl at 2,000 images. `--quick` runs `predict_files` in this process
on a few images with both engines instead (and checks they agree); `--no-predict` / `--predict-only` skip a part.
"""
from __future__ import annotations
import json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path
from PIL import Image
from benchutil import *
import torch
from torch import Tensor
from ssd_nbs.detector import build_detector
from ssd_nbs.inference import decode_preds
from ssd_nbs.deploy import export_onnx, export_detector, OnnxDetector
from bench_accuracy import RECIPES, ssdlite

def models(size:int, dest:Path):
    "name -> (threads -> function of a batch), parameters (M), anchors"
    det = build_detector(RECIPES['shapes' if size == RECIPES['shapes'].size else 'bccd'], ['#na#', 'a', 'b', 'c'])
    fn = export_onnx(det.model, det.loss_func.anchors, det.vocab, dest/f'ssd_{size}.onnx', 0.3, 0.5, 100)
    tv = ssdlite(3, size).eval()
    tv.score_thresh,tv.detections_per_img = 0.3, 100
    def ours(x):
        with torch.no_grad(): return decode_preds(*det.loss_func.activation(det.model(x)), 0.3, 0.5, 100)
    def theirs(x):
        with torch.no_grad(): return tv(list(x*0.25 + 0.5))                    # in [0,1], as torchvision wants them
    sessions = {}
    def onnx(x, t):
        if t not in sessions: sessions[t] = OnnxDetector(fn, threads=t)
        return sessions[t].run(x.numpy())
    n_par = lambda m: sum(p.numel() for p in m.parameters())/1e6
    fns = dict(eager=lambda t: ours, onnx=lambda t: (lambda x: onnx(x, t)), torchvision=lambda t: theirs)
    return fns, dict(ssd_nbs=n_par(det.model), torchvision=n_par(tv)), len(det.loss_func.anchors)

def check_same(fns, x):
    "onnxruntime's detections are eager PyTorch's (labels, scores to 1e-4, boxes in [0,1] to 1e-5)"
    b,s,l = fns['eager'](1)(x)
    ob,os_,ol,n = (torch.from_numpy(o) for o in fns['onnx'](1)(x))
    assert torch.equal(ol, l) and torch.allclose(os_, s, atol=1e-4), 'onnxruntime and PyTorch disagree'
    assert torch.allclose(ob, torch.where(l[...,None] > 0, (b+1)/2, 0.), atol=1e-5), 'onnxruntime and PyTorch disagree'

# ---- ssd-predict, end to end

_PREDICT = 'import sys; from ssd_nbs.cli import predict_main; sys.argv[0] = "ssd-predict"; predict_main()'
_DEC = ['--score-thresh', '0.01', '--max-det', '20']

def run_predict(model, inputs, out, *args, threads:int=1)->dict:
    "Run ssd-predict in a new process: wall seconds, its peak RSS (MB), exit code"
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': str(threads), 'PYTHONPATH': str(Path(__file__).parents[1])}
    rss = Path(out).with_name(Path(out).name + '.rss')
    # /usr/bin/time measures the peak: the rusage of a child forked from this (large) process would count our pages
    cmd = ['/usr/bin/time', '-f', '%M', '-o', str(rss), sys.executable, '-c', _PREDICT, str(model), *map(str, inputs),
           '--out', str(out), *_DEC, *args]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    sec = time.perf_counter() - t0
    if r.returncode != 0: raise RuntimeError(f'ssd-predict exited {r.returncode}: {r.stderr.decode()[-1000:]}')
    return dict(seconds=sec, rss_MB=int(rss.read_text().split()[-1])/1024, rc=r.returncode)

def bccd_folder(dest:Path, n:int)->Path:
    "A folder of `n` BCCD images (640x480 JPEGs), copied round-robin"
    src = sorted(Path(os.environ.get('BCCD', '/work/shared/data/BCCD'), 'JPEGImages').glob('*.jpg'))
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(n): shutil.copyfile(src[i % len(src)], dest/f'{i:05d}.jpg')
    return dest

def predict_models(dest:Path)->tuple: # (model.safetensors, model.onnx) of the BCCD recipe, random weights
    det = build_detector(RECIPES['bccd'], ['#na#', 'Platelets', 'RBC', 'WBC'])
    det.save(dest/'model.safetensors')
    return dest/'model.safetensors', export_detector(det, dest/'model.onnx', 0.01, det.cfg.nms_iou, 20)

def predict_quick(tmp:Path):
    "In this process: a few images through `predict_files` with both engines, which must agree"
    from ssd_nbs.detector import predict_files
    pt,onx = predict_models(tmp)
    ims = bccd_folder(tmp/'q', 6)
    kw = dict(score_thresh=0.01, max_det=20, bs=4, progress=False)
    t0 = time.perf_counter(); a = predict_files(pt, ims, tmp/'qa', **kw); t1 = time.perf_counter()
    b = predict_files(onx, ims, tmp/'qb', engine='onnx', **kw); t2 = time.perf_counter()
    assert [o['labels'] for o in a['images']] == [o['labels'] for o in b['images']], 'the engines disagree'
    print(f'predict_files on 6 BCCD images: torch {6/(t1-t0):.1f}, onnx {6/(t2-t1):.1f} images/s (in this process)')

def rewrite_cost(out:Path, reps:int=20)->float:
    "Milliseconds to rewrite `out`'s detections.json from its detections.jsonl (median)"
    from ssd_nbs.detector import Journal
    jn = Journal(out, json.loads((out/'detections.json').read_text()), resume=True)
    jn.head = {k: v for k,v in jn.head.items() if k not in ('images', 'skipped')}
    ts = []
    for _ in range(reps): t0 = time.perf_counter(); jn.write(); ts.append(time.perf_counter() - t0)
    return med(ts)*1e3

def predict_bench(tmp:Path)->list:
    "The rows of the ssd-predict table"
    pt,onx = predict_models(tmp)
    one = bccd_folder(tmp/'one', 1)/'00000.jpg'
    big = tmp/'big.jpg'
    with Image.open(one) as im: im.resize((8000, 6000), Image.BICUBIC).save(big, quality=90)
    rows = []
    def row(what, engine, n, r, **kw):
        rows.append(dict(what=what, engine=engine, n=n, seconds=r['seconds'], img_s=n/r['seconds'] if n > 1 else None,
                         rss_MB=r['rss_MB'], **kw))
        print(f"{what}, {engine}: {r['seconds']:.1f} s, peak RSS {r['rss_MB']:.0f} MB", flush=True)
    for engine,m in (('torch', pt), ('onnx', onx)):
        for k in range(3): row('start-up + one 640x480 image', engine, 1, run_predict(m, [one], tmp/f'o{k}', '--engine', engine))
        row('one 8000x6000 JPEG', engine, 1, run_predict(m, [big], tmp/'big_out', '--engine', engine))
    f100,f2000 = bccd_folder(tmp/'f100', 100), bccd_folder(tmp/'f2000', 2000)
    for engine,m in (('torch', pt), ('onnx', onx)):
        row('folder of 100 BCCD images', engine, 100, run_predict(m, [f100], tmp/f'p100_{engine}', '--engine', engine))
        row('folder of 2,000 BCCD images', engine, 2000, run_predict(m, [f2000], tmp/f'p2000_{engine}', '--engine', engine))
    d = json.loads((tmp/'p2000_torch'/'detections.json').read_text())
    ms = rewrite_cost(tmp/'p2000_torch')
    rows[-1].update(dets_per_image=sum(len(o['labels']) for o in d['images'])/len(d['images']), rewrite_ms=ms)
    print(f'rewriting detections.json from detections.jsonl at 2,000 images: {ms:.1f} ms '
          f"({(tmp/'p2000_torch'/'detections.json').stat().st_size/1e6:.2f} MB); {len(d['images'])//16} rewrites of "
          f'half that size on average in a run of 2,000: about {ms*len(d["images"])/16/2/1e3:.1f} s', flush=True)
    return rows

def main():
    p_doc = __doc__
    import sys
    no_predict,predict_only = '--no-predict' in sys.argv, '--predict-only' in sys.argv
    sys.argv = [a for a in sys.argv if a not in ('--no-predict', '--predict-only')]
    counts = '1' if '--quick' in sys.argv else '2,1'
    if '--threads' in sys.argv: counts = sys.argv[sys.argv.index('--threads')+1]   # one count, as run_all.sh asks
    if '--thread-counts' in sys.argv: counts = sys.argv.pop(sys.argv.index('--thread-counts')+1); sys.argv.remove('--thread-counts')
    threads = [int(o) for o in counts.split(',')]
    args, info, reps, gen = setup_reps(p_doc, 'batches')
    sizes,batches = ((RECIPES['shapes'].size,), (1,)) if args.quick else ((RECIPES['shapes'].size, 320), (1, 16))
    rows,tmp = [],Path(tempfile.mkdtemp())
    if predict_only: sizes = ()
    for size in sizes:
        fns,n_par,n_anc = models(size, tmp)
        check_same(fns, torch.randn(2, 3, size, size, generator=gen))
        for bs in batches:
            x = torch.randn(bs, 3, size, size, generator=gen)
            for t in threads:
                torch.set_num_threads(t)
                r = reps if size*bs < 2000 else max(3, reps//2)
                ts = time_round_robin({k: (lambda f=f(t): f(x)) for k,f in fns.items()}, r, warmup=2,
                                      min_time=0 if args.quick else 3.)
                m = {k: med(v)/bs*1e3 for k,v in ts.items()}
                rows.append(dict(size=size, bs=bs, threads=t, eager_ms=m['eager'], onnx_ms=m['onnx'], tv_ms=m['torchvision'],
                                 onnx_x=m['eager']/m['onnx'], tv_x=m['torchvision']/m['onnx'], n_anchors=n_anc,
                                 ours_params_M=n_par['ssd_nbs'], tv_params_M=n_par['torchvision'], reps=len(ts['eager']), times=ts))
                print(f"{size} px, batch {bs}, {t} thread(s): eager {m['eager']:.2f}, onnxruntime {m['onnx']:.2f}, "
                      f"SSDlite {m['torchvision']:.2f} ms/image", flush=True)
    cols = [('size','px'), ('bs','batch'), ('threads','threads'), ('eager_ms','PyTorch eager ms/image'),
            ('onnx_ms','onnxruntime ms/image'), ('onnx_x','eager / onnxruntime'), ('tv_ms','SSDlite320 ms/image'),
            ('tv_x','SSDlite / onnxruntime'), ('n_anchors','ssd_nbs anchors'), ('ours_params_M','ssd_nbs params (M)'),
            ('tv_params_M','SSDlite params (M)')]
    f = dict(eager_ms='.2f', onnx_ms='.2f', tv_ms='.2f', onnx_x='.1f', tv_x='.1f', ours_params_M='.2f', tv_params_M='.2f')
    import onnxruntime
    print(f"\nimages -> detections, median of {reps}+ batches taken in turns ({info['clock']} clock; onnxruntime "
          f"{onnxruntime.__version__}); ssd_nbs: tiny_resnet with the recipe of the size (64 px: ssd-train's default; "
          f"320 px: BCCD's), eager and exported by `export_onnx`\n")
    if rows: print(table(rows, cols, f))
    prows = []
    if args.quick and not no_predict: predict_quick(tmp)
    elif not no_predict:
        prows = predict_bench(tmp)
        print(f"\nssd-predict end to end, one thread (OMP_NUM_THREADS=1), a new process each run; BCCD recipe (320 px), "
              f"random weights, --score-thresh 0.01 --max-det 20 ({prows[-1]['dets_per_image']:.0f} boxes drawn per image)\n")
        print(table(prows, [('what','run'), ('engine','engine'), ('seconds','seconds'), ('img_s','images/s'), ('rss_MB','peak RSS (MB)')],
                    dict(seconds='.2f', img_s='.2f', rss_MB='.0f')))
    write_json(args.json, dict(bench='inference', machine=info, quick=args.quick, reps=reps, thread_counts=threads, rows=rows,
                               predict=prows))

if __name__ == '__main__': main()
