"""A panel of data sets unlike each other: the default `ssd-train --data PATH` beside the best hand-tuned recipe of each.

    python bench/panel.py                                # every row, the default and the hand recipes, seed 42
    python bench/panel.py --rows wbc,large --which default --seeds 42,0
    python bench/panel.py --quick                        # a few images, 1 epoch, 64 px: a check that it runs (CI)

Rows (each written once, seeded, into `--cache`, in a layout users bring, with the package's own writers):
  bccd   BCCD as it is (Pascal VOC, `trainval` -> `test`): small and medium cells, many per image
  wbc    BCCD's white cells alone (YOLO folder, `train` from BCCD's trainval, `val` = BCCD's test): one large object
  large  synthetic shapes drawn large, sides 40% to 100% of the image's, 1 to 3 an image (CSV, train.csv / val.csv)
  small  synthetic shapes drawn small, sides 5% to 15%, 3 to 12 an image (LabelImg VOC folder: ssd-train splits it)
  few    40 BCCD trainval images, scored on BCCD's test (VOC with ImageSets/Main/train.txt and test.txt)

Each run is the installed `ssd-train` in a subprocess, `--threads 1`; its cost is the CPU seconds of the subprocess
(`getrusage(RUSAGE_CHILDREN)` around it), its score the mAP@0.5 of its `metrics.json`, and its settings, with the
choice `ssd-train` derived from the data when it says so (`derived`), are read back from there. The default run is
`ssd-train --data PATH` with nothing else but the seed, threads and output folder; the hand recipes add options.
Results go into `--out`.json (runs of earlier calls are kept unless run again: key row, recipe, seed) and
`--out`.md (the table)."""
import os, sys, json, time, shlex, shutil, random, resource, argparse, subprocess, tempfile
from pathlib import Path
import numpy as np
from PIL import Image, ImageDraw
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import machine_info, table
from ssd_nbs.readers import bccd_path, voc_items
from ssd_nbs.readers import to_voc, to_yolo, to_csv
from ssd_nbs.readers import cache_dir


VERSION = 1                                        # bump when a data set's drawing or selection changes: redrawn

def bccd_root()->Path: return bccd_path()            # the repository's data/BCCD

def bccd_split(split:str)->tuple: return voc_items(bccd_root(), split)   # (files, targets) of BCCD's `split`

def _pick(items, n:int, seed:int)->tuple: # `n` items of `items` (all when n >= len), seeded, in their order
    idx = sorted(random.Random(seed).sample(range(len(items[0])), min(n, len(items[0]))))
    return [items[0][i] for i in idx], [items[1][i] for i in idx]

def _only(items, label:str)->tuple: # `items` with only the boxes of `label`, and only the images that have one
    keep = [(f, ([b for b,l in zip(bs,ls) if l == label], [l for l in ls if l == label])) for f,(bs,ls) in zip(*items)]
    keep = [(f, t) for f,t in keep if t[1]]
    return [f for f,_ in keep], [t for _,t in keep]

# ---- synthetic shapes with object sides in a range (make_shapes of 01_data draws its own mix of sizes)
KINDS = ('circle', 'square', 'triangle')

def _bg(rng, size:int)->Image.Image: # a muted gradient between two colours, with blotches of blurred noise
    c1, c2 = rng.integers(20, 150, 3), rng.integers(20, 150, 3)
    t = np.linspace(0, 1, size)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, size)[:, None, None]
    img = c1*(1-t) + c2*t + np.zeros((size, size, 3))
    noise = Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).resize((size, size), Image.BILINEAR)
    img += (np.asarray(noise, dtype=float)[..., None] - 128) * 0.25
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))

def _mask(kind:str, box, size:int)->np.ndarray: # (size, size) bool: a `kind` filling `box` (x1,y1,x2,y2, exclusive)
    m = Image.new('L', (size, size)); d = ImageDraw.Draw(m); x1,y1,x2,y2 = box[0], box[1], box[2]-1, box[3]-1
    if kind == 'circle': d.ellipse([x1,y1,x2,y2], fill=1)
    elif kind == 'square': d.rectangle([x1,y1,x2,y2], fill=1)
    else: d.polygon([(x1,y2), (x2,y2), ((x1+x2)/2, y1)], fill=1)
    return np.asarray(m).astype(bool)

def shapes_image(rng, size:int, sides:tuple, n_objs:tuple)->tuple:
    "One image: (PIL image, boxes, labels); object sides drawn log-uniformly in `sides` (fractions of `size`)"
    img = np.asarray(_bg(rng, size)).astype(float); inst = np.full((size, size), -1); areas, labels = [], []
    for _ in range(int(rng.integers(n_objs[0], n_objs[1]+1))):
        for _ in range(20):                                      # a place where every earlier object stays half visible
            kind = KINDS[rng.integers(3)]
            w = np.exp(rng.uniform(*np.log(sides))) * size; h = np.clip(w*np.exp(rng.uniform(-0.3, 0.3)), 4, size)
            if rng.random() < 0.5: w, h = h, w
            w, h = int(np.clip(round(w), 4, size)), int(np.clip(round(h), 4, size))
            x, y = int(rng.integers(0, size-w+1)), int(rng.integers(0, size-h+1))
            m = _mask(kind, (x, y, x+w, y+h), size)
            vis = np.bincount(inst[(inst >= 0) & ~m], minlength=len(areas))
            if (vis >= 0.5*np.array(areas, dtype=float)).all(): break
        else: continue
        inst[m] = len(areas); areas.append(int(m.sum())); labels.append(kind)
        img[m] = rng.integers(150, 256, 3)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    boxes = []
    for j in range(len(labels)):
        ys, xs = np.nonzero(inst == j); boxes.append([int(xs.min()), int(ys.min()), int(xs.max())+1, int(ys.max())+1])
    return Image.fromarray(img), boxes, labels

def draw_shapes(folder:Path, n:int, size:int, sides:tuple, n_objs:tuple, seed:int)->tuple:
    "Draw `n` images into `folder` as JPEG files: (files, targets)"
    folder.mkdir(parents=True, exist_ok=True); rng = np.random.default_rng(seed); files, targets = [], []
    for i in range(n):
        im, bs, ls = shapes_image(rng, size, sides, n_objs)
        f = folder/f'{i:05d}.jpg'; im.save(f, quality=90); files.append(f); targets.append((bs, ls))
    return files, targets

# ---- the rows: how to build each data set, and the hand recipes tried on it
def build_bccd(d:Path, q:bool):
    if not q: return bccd_root()
    return _voc_with_splits(d, _pick(bccd_split('trainval'), 8, 0), _pick(bccd_split('test'), 4, 0), 'test')

def _voc_with_splits(d:Path, tr, va, va_name:str)->Path: # a VOC folder with ImageSets/Main/train.txt and `va_name`.txt
    to_voc(tr, d, imgs='JPEGImages', anns='Annotations'); to_voc(va, d, imgs='JPEGImages', anns='Annotations')
    (d/'ImageSets'/'Main').mkdir(parents=True, exist_ok=True)
    for name,(fs,_) in (('train', tr), (va_name, va)):
        (d/'ImageSets'/'Main'/f'{name}.txt').write_text(''.join(f'{Path(f).stem}\n' for f in fs))
    return d

def build_wbc(d:Path, q:bool):
    tr, va = _only(bccd_split('trainval'), 'WBC'), _only(bccd_split('test'), 'WBC')
    tr, va = _pick(tr, 8 if q else 96, 0), _pick(va, 4 if q else len(va[0]), 0)
    to_yolo(tr, d, 'train', names=['WBC']); to_yolo(va, d, 'val', names=['WBC'])
    return d

def build_large(d:Path, q:bool):
    items = draw_shapes(d/'drawn', 12 if q else 128, 192, (0.4, 1.0), (1, 3), seed=1)
    k = 8 if q else 96
    to_csv((items[0][:k], items[1][:k]), d/'train.csv', images=d/'images')
    to_csv((items[0][k:], items[1][k:]), d/'val.csv', images=d/'images')
    shutil.rmtree(d/'drawn')
    return d

def build_small(d:Path, q:bool):
    items = draw_shapes(d/'drawn', 12 if q else 128, 320, (0.05, 0.15), (3, 12), seed=2)
    to_voc(items, d); shutil.rmtree(d/'drawn')                     # LabelImg: images/, annotations/, no split files
    return d

def build_few(d:Path, q:bool):
    return _voc_with_splits(d, _pick(bccd_split('trainval'), 8 if q else 40, 0),
                            _pick(bccd_split('test'), 4, 0) if q else bccd_split('test'), 'test')

# hand recipes: (name, options); stride 16 and 32 go through `--recipe bccd`, with the grids of that stride at 224 px
S16 = '--recipe bccd --size 224 --stride 16 --grids 14,7,4,2,1 --fit-anchors --epochs 10'   # a coarser cut, for large objects
S32 = '--recipe bccd --size 224 --stride 32 --grids 7,4,2,1 --fit-anchors --epochs 10'
ROWS = dict(
    bccd=dict(build=build_bccd, about='BCCD: 292 trainval -> 72 test images, 3 classes, small and medium cells, ~13 an image',
              hands=[('bccd recipe', '--recipe bccd')]),
    wbc=dict(build=build_wbc, about="BCCD's white cells alone: 96 trainval -> the 68 test images that have one, one large cell an image (YOLO)",
             hands=[('224px s16 fitted 10ep', S16), ('224px s32 fitted 10ep', S32)]),
    large=dict(build=build_large, about='shapes drawn large (sides 40-100%), 1-3 an image, 192 px: 96 -> 32 images (CSV)',
               hands=[('224px s16 fitted 10ep', S16), ('224px s32 fitted 10ep', S32)]),
    small=dict(build=build_small, about="shapes drawn small (sides 5-15%), 3-12 an image, 320 px: 128 images, ssd-train's random 20% split: 102 -> 26 (LabelImg VOC)",
               hands=[('bccd recipe 10ep', '--recipe bccd --epochs 10'), ('bccd fitted 10ep', '--recipe bccd --fit-anchors --epochs 10')]),
    few=dict(build=build_few, about='40 BCCD trainval images -> the 72 test images, 3 classes (VOC with split files)',
             hands=[('bccd recipe', '--recipe bccd'), ('bccd recipe 12ep', '--recipe bccd --epochs 12')]),
)
QUICK_OPTS = '--epochs 1 --size 64 --bs 4'          # appended to every run with --quick

def data_set(row:str, cache:Path, quick:bool)->Path:
    "The data set of `row`, built into `cache` on first use (a `panel.json` marks a finished one)"
    if row == 'bccd' and not quick: return bccd_root()
    d = cache/f"{row}{'_quick' if quick else ''}"; mark = d.with_suffix('.json'); want = dict(version=VERSION, row=row)
    if d.is_dir() and mark.is_file() and json.loads(mark.read_text()) == want: return d
    if d.exists(): shutil.rmtree(d)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{row}-', dir=cache))
    ROWS[row]['build'](tmp, quick)
    tmp.rename(d); mark.write_text(json.dumps(want))                # the mark beside the folder: not read as data
    return d

def ssd_train_cmd(opts:str)->list: # the installed `ssd-train`
    exe = Path(sys.executable).parent/'ssd-train'
    return [str(exe)] if exe.is_file() else [shutil.which('ssd-train') or 'ssd-train']

def quick_opts(opts:str)->str: # `opts` at 64 px, 1 epoch: its size, stride, grids and epochs replaced
    o, keep = shlex.split(opts), []
    for i,x in enumerate(o):
        if x in ('--size', '--stride', '--grids', '--epochs') or (i and o[i-1] in ('--size', '--stride', '--grids', '--epochs')): continue
        keep.append(x)
    return shlex.join(keep + shlex.split(QUICK_OPTS) + (['--grids', '8,4,2,1'] if '--recipe' in o else []))

def run(row:str, name:str, data:Path, opts:str, seed:int, threads:int, runs:Path, quick:bool)->dict:
    "Train once with `ssd-train`; its mAP, CPU seconds and settings"
    out = runs/f"{row}-{name.replace(' ', '_')}-seed{seed}"
    opts = quick_opts(opts) if quick else opts
    cmd = [*ssd_train_cmd(opts), '--data', str(data), *shlex.split(opts),
           '--seed', str(seed), '--threads', str(threads), '--out', str(out)]
    print(f'\n## {row} / {name} / seed {seed}\n{shlex.join(cmd)}', flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    r1, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()-t0
    log = (p.stdout + p.stderr).splitlines(True)                  # without fastprogress's bars ('Epoch 3/19 : |███--')
    (out.parent/f'{out.name}.log').write_text(''.join(l for l in log if l.strip('█ \n') and not l.startswith('Epoch ')))
    cpu = (r1.ru_utime-r0.ru_utime) + (r1.ru_stime-r0.ru_stime)
    res = dict(row=row, recipe=name, options=opts, seed=seed, command=shlex.join(cmd), cpu_seconds=round(cpu, 1),
               wall_seconds=round(wall, 1), returncode=p.returncode)
    if p.returncode != 0:
        print(p.stdout[-2000:] + p.stderr[-2000:], file=sys.stderr)
        return dict(res, error=(p.stderr.strip().splitlines() or ['?'])[-1])
    for f in (*out.glob('*.safetensors'), *out.glob('*.pth'), *out.glob('*.png')): f.unlink()  # kept: metrics, errors
    m = json.loads((out/'metrics.json').read_text()); s = m['settings']
    res.update(mAP=round(m['mAP'], 4), per_class={k: round(v, 4) for k,v in m['per_class'].items()}, errors=m.get('errors'),
               epochs=s.get('epochs'), **{k: s.get(k) for k in ('arch', 'size', 'stride', 'grids', 'zooms', 'ratios',
               'fit_anchors', 'layout', 'split', 'n_train', 'n_valid')}, derived=m.get('derived', s.get('derived')))
    print(f"mAP {res['mAP']:.3f} in {res['cpu_seconds']:.0f} CPU s ({res['wall_seconds']:.0f} s wall); epochs {res['epochs']}, "
          f"size {res['size']}, stride {res['stride']}, grids {res['grids']}, zooms {res['zooms']}"
          + (f"\nderived: {json.dumps(res['derived'])}" if res['derived'] else ''), flush=True)
    return res

# ---- the table
def _mean(rs, k): v = [r[k] for r in rs if r.get(k) is not None]; return sum(v)/len(v) if v else None

def _setting(r)->str: # what a run trained: size, stride, grids, zooms, epochs
    if r is None or r.get('mAP') is None: return ''
    z = r.get('zooms') or []
    return (f"{r['size']} px, stride {r['stride'] or 'body'}, grids {','.join(map(str, r['grids'] or []))}, zooms "
            f"{','.join(f'{o:g}' for o in z)}, {r['epochs']} ep" + (' (derived)' if r.get('derived') else ''))

def summary(runs:list)->list:
    "One row of the table per data set: the default (mean over its seeds) beside the best hand recipe"
    rows = []
    for row in ROWS:
        rs = [r for r in runs if r['row'] == row and r.get('mAP') is not None]
        if not rs: continue
        by = {}
        for r in rs: by.setdefault(r['recipe'], []).append(r)
        agg = {k: dict(mAP=_mean(v, 'mAP'), cpu=_mean(v, 'cpu_seconds'), n=len(v), last=v[-1]) for k,v in by.items()}
        hands = {k: v for k,v in agg.items() if k != 'default'}
        best = max(hands, key=lambda k: agg[k]['mAP']) if hands else None
        d, b = agg.get('default'), agg.get(best)
        goal = None
        if d and b:
            goal = d['mAP'] >= b['mAP']-0.02 and d['cpu'] <= b['cpu'] and (row != 'bccd' or d['mAP'] >= 0.902)
        rows.append(dict(row=row, about=ROWS[row]['about'],
                         d_map=d and d['mAP'], d_cpu=d and d['cpu'], d_n=d and d['n'], d_set=_setting(d and d['last']),
                         b_name=best and best + (' (recorded)' if b['last'].get('source') else ''), b_map=b and b['mAP'], b_cpu=b and b['cpu'], b_set=b and b['last']['options'],
                         tried='; '.join(f"{k}: {v['mAP']:.3f} in {v['cpu']:.0f} s" for k,v in hands.items()),
                         goal={None: 'not measured', True: 'met', False: 'not met'}[goal]))
    return rows

def markdown(rows:list, runs:list, info:dict)->str:
    f3 = lambda v: f'{v:.3f}'; f0 = lambda v: f'{v:.0f}'
    t = table(rows, [('row', 'data set'), ('d_map', 'default mAP'), ('d_cpu', 'default CPU s'), ('d_n', 'seeds'),
                     ('d_set', 'default trained'), ('b_name', 'best hand recipe'), ('b_map', 'its mAP'), ('b_cpu', 'its CPU s'),
                     ('b_set', 'its options'), ('goal', 'goal'), ('tried', 'hand recipes tried (mAP, CPU s)')],
              dict(d_map=f3, b_map=f3, d_cpu=f0, b_cpu=f0, b_set=lambda v: f'`{v}`'))
    about = '\n'.join(f"- `{r['row']}`: {r['about']}" for r in rows)
    about += ''.join(f"\n- `{r['row']}` / {r['recipe']} (recorded): {r['source']}" for r in runs if r.get('source'))
    return (f"{t}\n\n{about}\n\nGoal: the default within 0.02 mAP of the best hand recipe in no more CPU time (BCCD: and "
            f"no lower than 0.902). One thread per run, CPU seconds of the `ssd-train` process; machine: {info['cpu']}, "
            f"{info['cores']} cores shared with other jobs (load {' '.join(f'{o:.1f}' for o in info['loadavg_at_start'])} at the start), torch {info['torch']}, "
            f"git {info['git']}.\n")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rows', default=','.join(ROWS), help=f"comma-separated, of {', '.join(ROWS)} (default: all)")
    p.add_argument('--seeds', default='42', help='comma-separated seeds of the default runs (hand recipes: the first)')
    p.add_argument('--which', choices=['all', 'default', 'hand', 'none'], default='all',
                   help="the default run, the hand recipes, both, or none (only the table, from OUT.json)")
    p.add_argument('--hands', default=None, help="only the hand recipes of these names (comma-separated), e.g. 'bccd recipe'")
    p.add_argument('--quick', action='store_true', help=f'a few images a row, `{QUICK_OPTS}`: a check that it runs')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--cache', default=None, help='folder of the data sets (default: cache_dir()/panel)')
    p.add_argument('--out', default=None, help='results: OUT.json (kept and added to) and OUT.md; default '
                   'bench/results/panel (with --quick: a temporary folder)')
    a = p.parse_args(argv)
    rows, seeds = a.rows.split(','), [int(s) for s in a.seeds.split(',')]
    if bad := [r for r in rows if r not in ROWS]: p.error(f"--rows: unknown {', '.join(bad)}; use {', '.join(ROWS)}")
    tmp = tempfile.TemporaryDirectory() if a.quick else None
    out = Path(a.out) if a.out else Path(tmp.name)/'panel' if a.quick else Path(__file__).resolve().parent/'results'/'panel'
    cache = Path(a.cache) if a.cache else Path(tmp.name)/'cache' if a.quick else cache_dir()/'panel'
    cache.mkdir(parents=True, exist_ok=True)
    runs_dir = out.parent/f'{out.name}_runs'; runs_dir.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    js = out.with_suffix('.json')
    old = json.loads(js.read_text())['runs'] if js.is_file() else []
    for row in rows if a.which != 'none' else []:
        data = data_set(row, cache, a.quick)
        todo = [('default', '', s) for s in seeds] if a.which in ('all', 'default') else []
        if a.which in ('all', 'hand') and (not a.quick or row == rows[0]):          # --quick: one hand recipe, first row
            hands = [h for h in ROWS[row]['hands'] if not a.hands or h[0] in a.hands.split(',')]
            todo += [(n, o, seeds[0]) for n,o in (hands[:1] if a.quick else hands)]
        for name, opts, seed in todo:
            r = run(row, name, data, opts, seed, a.threads, runs_dir, a.quick)
            r['machine'] = dict(cpu=info['cpu'], cores=info['cores'], git=info['git'], date=time.strftime('%Y-%m-%d %H:%M'),
                                loadavg=os.getloadavg())
            old = [o for o in old if (o['row'], o['recipe'], o['seed']) != (row, name, seed)] + [r]
            js.write_text(json.dumps(dict(machine=info, runs=old), indent=1))
    md = markdown(summary(old), old, info)
    out.with_suffix('.md').write_text(md)
    print('\n' + md)
    if any(r.get('error') for r in old if r['row'] in rows): sys.exit(1)

if __name__ == '__main__': main()
