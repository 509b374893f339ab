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
"""
from __future__ import annotations
import tempfile
from pathlib import Path
from benchutil import *
import torch
from torch import Tensor
from ssd_nbs.detector import build_detector
from ssd_nbs.inference import decode_preds
from ssd_nbs.deploy import export_onnx, OnnxDetector
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

def main():
    p_doc = __doc__
    import sys
    counts = '1' if '--quick' in sys.argv else '2,1'
    if '--threads' in sys.argv: counts = sys.argv[sys.argv.index('--threads')+1]   # one count, as run_all.sh asks
    if '--thread-counts' in sys.argv: counts = sys.argv.pop(sys.argv.index('--thread-counts')+1); sys.argv.remove('--thread-counts')
    threads = [int(o) for o in counts.split(',')]
    args, info, reps, gen = setup_reps(p_doc, 'batches')
    sizes,batches = ((RECIPES['shapes'].size,), (1,)) if args.quick else ((RECIPES['shapes'].size, 320), (1, 16))
    rows,tmp = [],Path(tempfile.mkdtemp())
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
    print(table(rows, cols, f))
    write_json(args.json, dict(bench='inference', machine=info, quick=args.quick, reps=reps, thread_counts=threads, rows=rows))

if __name__ == '__main__': main()
