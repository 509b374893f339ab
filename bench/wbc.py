"""One large object per image: BCCD reduced to its white cells (WBC), trained by `ssd-train` on the pretrained body.

    python bench/wbc.py                  # the run of bench/RESULTS.md: about 10 minutes on one CPU thread
    python bench/wbc.py --quick          # 16 images, 1 epoch at 128 px: a check that it runs

The data set is built with the package's own reader and writer: `voc_items` reads every BCCD image, the
boxes other than WBC are dropped (images left without a box too), and `to_voc` writes the rest as a LabelImg
folder (`annotations/`, `images/`, no `ImageSets/`), so `ssd-train` validates on a seeded random fifth
(`random_split`, seed 42). Then it runs `ssd-train` on it exactly as the printed command line says, and writes the
mAP@0.5 of that fifth, the wall and CPU time, the command and the machine to `--out`."""
import sys, time, json, shlex, resource, argparse, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import machine_info
from ssd_nbs.readers import bccd_path
from ssd_nbs.readers import voc_items, to_voc
from ssd_nbs.cli import train_main

def wbc_items(n:int=0)->tuple: # (files, targets) of BCCD with WBC boxes only; the first `n` images (0: all)
    files,targets = voc_items(bccd_path())
    keep = [(f, ([b for b,l in zip(bs,ls) if l == 'WBC'], ['WBC']*ls.count('WBC'))) for f,(bs,ls) in zip(files, targets)]
    keep = [(f, t) for f,t in keep if t[1]][:n or None]
    return [f for f,_ in keep], [t for _,t in keep]

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--quick', action='store_true', help='16 images, 1 epoch at 128 px: a check that it runs')
p.add_argument('--threads', type=int, default=1)
p.add_argument('--data', default=None, help='folder for the WBC data set (default: a temporary folder)')
p.add_argument('--opts', default='--size 224 --epochs 10 --bs 16 --lr 1e-2', help='the options of ssd-train, besides the data, body, threads and output')
p.add_argument('--out', default=None, help='JSON file for the results')
a = p.parse_args()
tmp = tempfile.TemporaryDirectory()
data = Path(a.data or Path(tmp.name)/'bccd_wbc')
items = wbc_items(16 if a.quick else 0)
if not (data/'annotations').is_dir(): to_voc(items, data)
run = data.parent/'wbc_run'                                  # beside the data (a temporary folder by default)
opts = '--epochs 1 --size 128 --bs 8' if a.quick else a.opts
cmd = f'ssd-train --data {data} --arch efficientnet_lite0 {opts} --threads {a.threads} --out {run}'
print(cmd, flush=True)
t0, c0 = time.time(), time.process_time()
train_main(shlex.split(cmd)[1:])
wall, cpu = time.time()-t0, time.process_time()-c0
m = json.loads((run/'metrics.json').read_text())
res = dict(command=cmd, mAP=m['mAP'], per_class=m['per_class'], n_images=len(items[0]), n_boxes=sum(len(l) for _,l in items[1]),
           n_train=m['settings']['n_train'], n_valid=m['settings']['n_valid'], split=m['settings']['split'],
           grids=m['settings']['grids'], wall_seconds=round(wall, 1), cpu_seconds=round(cpu, 1),
           max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024), history=m['history'],
           machine=machine_info())
print(json.dumps({k: res[k] for k in ('mAP', 'wall_seconds', 'cpu_seconds', 'n_train', 'n_valid', 'grids')}))
if a.out: Path(a.out).write_text(json.dumps(res, indent=1))
