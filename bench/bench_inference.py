#!/usr/bin/env python
"""Detecting without the training stack, measured side by side in one run, one thread (OMP_NUM_THREADS=1):

    python bench/bench_inference.py --model ssd_run/model.safetensors [--rounds 3] [--json out.json]
    python bench/bench_inference.py --quick          # a random-weight BCCD-recipe model (also without --model); checks that it runs

1. Start-up: `ssd-predict` on one 640x480 image with each engine (a new process each time), against the bare import
   of its runtime (`python -c "import onnxruntime, numpy, PIL"`, `python -c "import torch, torchvision"`), and the
   import of the command alone; CPU seconds (user + system, /usr/bin/time) and peak RSS, the runs taken in turns.
2. `ssd-predict` on a folder (BCCD's test images): images per CPU second and peak RSS, torch, float ONNX, int8 ONNX.
3. The network at the model's size, batch 1, in this process, in turns: PyTorch eager (network; network + decoding
   + NMS, as `Detector` runs them), onnxruntime float and int8 (the whole graph); where each spends its time
   (onnxruntime's profiler by operator type; eager network against decoding and NMS).
4. float against int8: mAP@0.5 on BCCD's test set (the validation set of the BCCD recipe's split), with the int8 file
   calibrated on 32 training images.

Machine time is CPU time of one thread, so a busy machine slows every row alike; ratios are of runs taken in turns.
"""
from __future__ import annotations
import json, os, subprocess, sys, tempfile, time, collections
from pathlib import Path
from benchutil import *
import numpy as np
import torch

PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'MPLBACKEND': 'Agg', 'PYTHONPATH': str(ROOT)}
PREDICT = 'import sys; from ssd_nbs.cli import predict_main; sys.argv[0] = "ssd-predict"; predict_main()'

def run(args:list, tmp:Path, cache:Path|None=None)->dict:
    "A new process: its CPU seconds (user + system) and peak RSS (MB), as /usr/bin/time measures them; `cache`: its XDG_CACHE_HOME"
    out = tmp/'time.txt'
    env = {**ENV, 'XDG_CACHE_HOME': str(cache or tmp/'cache')}           # the optimised ONNX graphs the runs keep
    r = subprocess.run(['/usr/bin/time', '-f', '%U %S %M', '-o', str(out), *args], env=env, capture_output=True, text=True)
    if r.returncode != 0: raise RuntimeError(f'{args[:4]} exited {r.returncode}: {r.stderr[-1500:]}')
    u,s,m = out.read_text().split()[-3:]
    return dict(cpu=float(u)+float(s), rss=int(m)/1024)

def startup(models:dict, one:Path, tmp:Path, rounds:int)->list:
    "Rows: each command's median CPU seconds and peak RSS over `rounds` rounds taken in turns"
    cmds = {'bare: import onnxruntime, numpy, PIL': [PY, '-c', 'import onnxruntime, numpy, PIL'],
            'onnx engine: import of the command': [PY, '-c', 'import ssd_nbs.cli'],
            'onnx engine: ssd-predict, one image': [PY, '-c', PREDICT, str(models['onnx']), str(one), '--engine', 'onnx', '--out', str(tmp/'so')],
            'onnx engine, first start (graph optimised and kept)': [PY, '-c', PREDICT, str(models['onnx']), str(one), '--engine', 'onnx', '--out', str(tmp/'s1')],
            'int8: ssd-predict, one image': [PY, '-c', PREDICT, str(models['int8']), str(one), '--engine', 'onnx', '--out', str(tmp/'s8')],
            'bare: import torch, torchvision': [PY, '-c', 'import torch, torchvision'],
            'torch engine: import of the command and the detector': [PY, '-c', 'import ssd_nbs.cli, ssd_nbs.detector'],
            'torch engine: ssd-predict, one image': [PY, '-c', PREDICT, str(models['torch']), str(one), '--out', str(tmp/'st')]}
    res = {k: [] for k in cmds}
    for k in ('onnx', 'int8'): run([PY, '-c', PREDICT, str(models[k]), str(one), '--engine', 'onnx', '--out', str(tmp/'s0')], tmp)  # keep the graphs
    for i in range(rounds):
        for k,c in cmds.items(): res[k].append(run(c, tmp, tmp/f'cold{i}' if 'first start' in k else None))
    rows = [dict(what=k, cpu=med([o['cpu'] for o in v]), runs=' '.join(f"{o['cpu']:.2f}" for o in v),
                 rss=max(o['rss'] for o in v)) for k,v in res.items()]
    by = {r['what']: r for r in rows}
    for r in rows:
        base = by['bare: import onnxruntime, numpy, PIL' if 'onnx' in r['what'] or 'int8' in r['what'] else 'bare: import torch, torchvision']
        r['x_bare'] = r['cpu']/base['cpu']
    return rows

PARTS = """import sys, time; t0 = time.process_time()
import ssd_nbs.cli; t1 = time.process_time()
from ssd_nbs.predict import OnnxDetector, read_image, draw_preds
d = OnnxDetector(sys.argv[1], threads=1); t2 = time.process_time()
im, wh = read_image(sys.argv[2]); t3 = time.process_time()
p = d([im])[0]; t4 = time.process_time()
draw_preds(im, p, sys.argv[3], d.vocab); t5 = time.process_time()
print(t1-t0, t2-t1, t3-t2, t4-t3, t5-t4)"""

TORCH_PARTS = """import sys, time; t0 = time.process_time()
import torch, torchvision; t1 = time.process_time()
import ssd_nbs.cli, ssd_nbs.detector; t2 = time.process_time()
from ssd_nbs.predict import read_image, draw_preds
d = ssd_nbs.detector.load_detector(sys.argv[1]); t3 = time.process_time()
im, wh = read_image(sys.argv[2]); t4 = time.process_time()
p = d([im])[0]; t5 = time.process_time()
draw_preds(im, p, sys.argv[3], d.vocab); t6 = time.process_time()
print(t1-t0, t2-t1, t3-t2, t4-t3, t5-t4, t6-t5)"""

def startup_parts(fn:Path, one:Path, tmp:Path, rounds:int, code:str=PARTS, cache:Path|None=None,
                  names=('import', 'session', 'read', 'detect', 'draw'))->dict:
    "Where an engine's start-up goes, CPU seconds in a new process (median): import, session, read, detect, draw"
    env = {**ENV, 'XDG_CACHE_HOME': str(cache or tmp/'cache')}
    runs = [subprocess.run([PY, '-c', code, str(fn), str(one), str(tmp/'parts.png')], env=env, capture_output=True,
                           text=True).stdout.split() for _ in range(rounds)]
    return {k: med([float(r[i]) for r in runs]) for i,k in enumerate(names)}

def modules_loaded(code:str)->list:
    r = subprocess.run([PY, '-c', code + "; import sys; print(sorted({m.split('.')[0] for m in sys.modules} & "
                        "{'torch', 'torchvision', 'fastai', 'matplotlib', 'timm', 'pandas', 'onnxruntime'}))"],
                       env=ENV, capture_output=True, text=True)
    return r.stdout.strip()

def folder(models:dict, files:list, tmp:Path)->list:
    "Rows: ssd-predict on the folder of `files`, each engine, images per CPU second and peak RSS"
    d = tmp/'folder'; d.mkdir(exist_ok=True)
    for f in files: (d/f.name).write_bytes(f.read_bytes())
    rows = []
    for k,extra in (('torch', []), ('onnx', ['--engine', 'onnx']), ('int8', ['--engine', 'onnx'])):
        r = run([PY, '-c', PREDICT, str(models[k]), str(d), '--out', str(tmp/f'f_{k}'), *extra], tmp)
        rows.append(dict(engine=k, images=len(files), cpu=r['cpu'], img_s=len(files)/r['cpu'], rss=r['rss']))
    return rows

def ort_profile(fn:Path, x:np.ndarray, n:int=20)->list:
    "onnxruntime's time by operator type over `n` runs: [(op, share)]"
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.enable_profiling, so.profile_file_prefix = True, str(fn.parent/'prof')
    s = ort.InferenceSession(str(fn), so, providers=['CPUExecutionProvider'])
    for _ in range(n): s.run(None, {'images': x})
    p = s.end_profiling(); ev = json.load(open(p)); os.remove(p)
    by = collections.Counter()
    for e in ev:
        if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'): by[e['args']['op_name']] += e['dur']
    tot = sum(by.values())
    return [(k, v/tot) for k,v in by.most_common(6)]

def network(det, models:dict, im, reps:int)->dict:
    "ms per image at batch 1 (CPU clock, in turns): eager network, eager + decoding + NMS, onnxruntime float and int8"
    from ssd_nbs.inference import detections
    from ssd_nbs.predict import OnnxDetector, preprocess
    onx,i8 = OnnxDetector(models['onnx'], threads=1), OnnxDetector(models['int8'], threads=1)
    x = torch.from_numpy(preprocess([im], det.size, onx.meta['mean'], onx.meta['std'])).contiguous(memory_format=torch.channels_last)
    xn = preprocess([im], onx.size, onx.meta['mean'], onx.meta['std'])
    post = det.post()
    def eager_net():
        with torch.no_grad(): return det.model(x)
    def eager():
        with torch.no_grad(): return detections(det.model(x), det.anchors.boxes, post)
    fns = dict(eager_network=eager_net, eager=eager, onnx=lambda: onx.run(xn), int8=lambda: i8.run(xn),
               eager_preprocess=lambda: torch.from_numpy(preprocess([im], det.size, onx.meta['mean'], onx.meta['std'])), onnx_preprocess=lambda: preprocess([im], onx.size, onx.meta['mean'], onx.meta['std']))
    ts = time_round_robin(fns, reps, warmup=2)
    return {k: med(v)*1e3 for k,v in ts.items()}

def maps(models:dict, valid:tuple)->dict:
    from ssd_nbs.deploy import onnx_map
    return {k: onnx_map(models[k], valid) for k in ('onnx', 'int8')}

def main():
    p = parser(__doc__.split('\n\n')[0])
    p.add_argument('--model', help='a model.safetensors of the BCCD recipe (default: random weights, --quick only)')
    p.add_argument('--rounds', type=int, default=3, help='start-up runs of each command, in turns (default 3)')
    p.add_argument('--reps', type=int, default=60, help='timed batches of each kind in this process (default 60)')
    sys.argv += ['--threads', '1', '--clock', 'cpu']
    args = p.parse_args()
    info = setup(args)
    from ssd_nbs.readers import read_data
    from ssd_nbs.detector import load_detector, build_detector
    from ssd_nbs.deploy import export_detector, quantize_onnx
    from ssd_nbs.config import RECIPES
    from ssd_nbs.predict import read_image
    tmp = Path(tempfile.mkdtemp())
    from ssd_nbs.readers import bccd_path
    ds = read_data(os.environ.get('BCCD') or bccd_path())
    if args.model: det = load_detector(args.model); src = Path(args.model)
    else:
        if not args.quick: print('# no --model: a BCCD-recipe model with random weights; its mAP rows mean nothing', file=sys.stderr)
        det = build_detector(RECIPES['bccd'], ['#na#', 'Platelets', 'RBC', 'WBC']); src = tmp/'model.safetensors'; det.save(src)
    det.model.eval()
    t0 = time.process_time(); fn = export_detector(det, tmp/'model.onnx'); t_exp = time.process_time() - t0
    t0 = time.process_time(); q8 = quantize_onnx(fn, tmp/'model_int8.onnx', ds.train[0][:32]); t_q = time.process_time() - t0
    models = dict(torch=src, onnx=fn, int8=q8)
    print(f'model {src} ({det.cfg.arch}, {det.size} px, {len(det.anchors)} anchors); export {t_exp:.1f} CPU s, '
          f'int8 quantization (32 training images) {t_q:.1f} CPU s; ONNX {fn.stat().st_size/1e6:.1f} MB, int8 {q8.stat().st_size/1e6:.1f} MB\n', flush=True)
    valid = ds.valid if not args.quick else (ds.valid[0][:8], ds.valid[1][:8])
    one = tmp/'one.jpg'; one.write_bytes(Path(valid[0][0]).read_bytes())
    loaded = {k: modules_loaded(c) for k,c in (('import ssd_nbs.cli', 'import ssd_nbs.cli'),
                                               ('import ssd_nbs.detector', 'import ssd_nbs.detector'),
                                               ('import ssd_nbs.deploy', 'import ssd_nbs.deploy'))}
    for k,v in loaded.items(): print(f'{k}: loads {v}')
    su = startup(models, one, tmp, 1 if args.quick else args.rounds)
    print('\nstart-up, CPU seconds (user + system) of a new process, median of the rounds taken in turns; one thread\n')
    print(table(su, [('what', 'command'), ('cpu', 'CPU s'), ('runs', 'runs'), ('x_bare', 'x its bare import'), ('rss', 'peak RSS (MB)')],
                dict(cpu='.2f', x_bare='.2f', rss='.0f')), flush=True)
    parts = startup_parts(models['onnx'], one, tmp, 3)
    print('\nthe onnx engine in a new process, CPU s (median of 3): ' + ', '.join(f'{k} {v:.3f}' for k,v in parts.items()), flush=True)
    cold = {k: startup_parts(models['onnx'], one, tmp, 1, cache=tmp/f'pcold{i}') for i,k in enumerate('abc')}
    cold = {k: med([o[k] for o in cold.values()]) for k in parts}
    print('  the same, the graph not kept yet (optimised, then written): ' + ', '.join(f'{k} {v:.3f}' for k,v in cold.items()), flush=True)
    tparts = startup_parts(models['torch'], one, tmp, 3, TORCH_PARTS, names=('import torch, torchvision', 'import ssd_nbs',
                                                                             'load', 'read', 'detect', 'draw'))
    print('the torch engine in a new process, CPU s (median of 3): ' + ', '.join(f'{k} {v:.3f}' for k,v in tparts.items()), flush=True)
    fo = folder(models, valid[0], tmp)
    print(f'\nssd-predict on a folder of {len(valid[0])} BCCD test images (640x480; reading, detecting, drawing, writing)\n')
    print(table(fo, [('engine', 'engine'), ('images', 'images'), ('cpu', 'CPU s'), ('img_s', 'images per CPU s'), ('rss', 'peak RSS (MB)')],
                dict(cpu='.1f', img_s='.1f', rss='.0f')), flush=True)
    torch.set_num_threads(1)
    im = read_image(one)[0]
    ms = network(det, models, im, 5 if args.quick else args.reps)
    print(f'\nthe network at {det.size} px, batch 1, ms per image (CPU clock, median, in turns; one thread)\n')
    for k,v in ms.items(): print(f'  {k:18s} {v:7.2f}')
    print(f"  eager / onnx      {ms['eager']/ms['onnx']:7.2f}   (eager network alone / onnx: {ms['eager_network']/ms['onnx']:.2f})")
    print(f"  onnx / int8       {ms['onnx']/ms['int8']:7.2f}")
    from ssd_nbs.predict import preprocess
    from ssd_nbs.body import IMAGENET_STATS as STATS
    xn = preprocess([im], det.size, *STATS)
    prof = {k: ort_profile(models[k], xn) for k in ('onnx', 'int8')}
    for k,v in prof.items(): print(f'  onnxruntime {k} by operator: ' + ', '.join(f'{o} {s:.0%}' for o,s in v))
    mp = maps(models, valid)
    print(f"\nmAP@0.5 on {len(valid[0])} BCCD test images (the file's score threshold {det.cfg.score_thresh}): "
          f"float {mp['onnx']:.3f}, int8 {mp['int8']:.3f} (difference {mp['int8']-mp['onnx']:+.3f})")
    write_json(args.json, dict(bench='inference', machine=info, quick=args.quick, model=str(src), loaded=loaded, startup=su, startup_parts=parts,
                               startup_parts_first=cold, startup_parts_torch=tparts,
                               folder=fo, network_ms=ms, profile=prof, mAP=mp))

if __name__ == '__main__': main()
