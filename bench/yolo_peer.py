"""The peer a user would pick instead: Ultralytics YOLOv8n from its yaml (no weights) on BCCD, scored by ssd_nbs's `mean_ap`.

    pip install ultralytics                          # bench only: Ultralytics is AGPL, never a dependency of ssd_nbs
    python bench/yolo_peer.py                        # 15 minutes of training (`time=`), 320 px, one thread
    python bench/yolo_peer.py --quick                # a check that it runs (a message, and exit 0, without ultralytics)

BCCD's `trainval` and `test` (`data_items(bccd_path(), 'voc', None, 42)`, as `bccd_body.py`) are written in the YOLO
layout (`ssd_nbs.readers.to_yolo`); YOLOv8n trains offline (YOLO_OFFLINE=1, no plots, no AMP check, workers=0,
device cpu) for `--minutes`, then predicts the test images at conf 0.001, and `ssd_nbs.metrics.mean_ap` scores the
detections against the same boxes as ours (mAP@0.5, area method). Writes wall and process CPU seconds."""
import os, sys, time, json, argparse, importlib.util, tempfile
from pathlib import Path
p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--minutes', type=float, default=15., help='training budget (ultralytics `time=`)')
p.add_argument('--imgsz', type=int, default=320); p.add_argument('--batch', type=int, default=16)
p.add_argument('--epochs', type=int, default=300, help='upper bound: `time=` sets the epochs after the first one')
p.add_argument('--conf', type=float, default=0.001); p.add_argument('--threads', type=int, default=1)
p.add_argument('--clock', default='cpu', choices=['cpu', 'wall'],
               help="what `time=` counts: the process's CPU seconds (fair on a shared machine) or wall seconds")
p.add_argument('--quick', action='store_true', help='8 images, 1 epoch at 128 px: a check that it runs')
p.add_argument('--dir', default=None, help='folder of the YOLO data and runs (default: a temporary one)')
p.add_argument('--out', default=None, help='JSON file for the results')
a = p.parse_args()
if importlib.util.find_spec('ultralytics') is None:
    print('bench: yolo_peer.py needs ultralytics (pip install ultralytics; AGPL, bench only): skipped'); sys.exit(0)
os.environ['OMP_NUM_THREADS'] = str(a.threads); os.environ['YOLO_OFFLINE'] = '1'   # before torch and ultralytics load
os.environ.setdefault('YOLO_VERBOSE', 'False')
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchutil import machine_info
import torch
torch.set_num_threads(a.threads)
import ultralytics, ultralytics.utils, ultralytics.utils.torch_utils
from ultralytics import YOLO
ultralytics.utils.NUM_THREADS = ultralytics.utils.torch_utils.NUM_THREADS = a.threads  # `select_device` resets threads to it
if a.clock == 'cpu':                                                      # the trainer's only clock is `time.time()`
    import types, ultralytics.engine.trainer as _tr
    _tr.time = types.SimpleNamespace(time=time.process_time)
from ssd_nbs.readers import bccd_path
from ssd_nbs.readers import data_items
from ssd_nbs.readers import to_yolo
from ssd_nbs.metrics import mean_ap

t0,c0 = time.time(),time.process_time()
tr,va = data_items(bccd_path(), 'voc', None, 42)
if a.quick: tr,va,a.epochs,a.imgsz,a.minutes = (tr[0][:8], tr[1][:8]), (va[0][:4], va[1][:4]), 1, 128, 0
d = Path(a.dir or tempfile.mkdtemp(prefix='yolo_peer_')); d.mkdir(parents=True, exist_ok=True)
names = sorted({l for _,ls in tr[1] + va[1] for l in ls})
to_yolo(tr, d/'data', 'train', names); y = to_yolo(va, d/'data', 'val', names)
y.write_text(y.read_text() + f'path: {(d/"data").resolve()}\n')
model = YOLO('yolov8n.yaml')                                               # the architecture alone: random weights
kw = dict(time=a.minutes/60) if a.minutes else {}
t1,c1 = time.time(),time.process_time()
model.train(data=str(y), imgsz=a.imgsz, epochs=a.epochs, batch=a.batch, workers=0, device='cpu', pretrained=False,
            amp=False, plots=False, val=False, project=str(d/'runs'), name='train', exist_ok=True, seed=42,
            deterministic=False, verbose=False, **kw)
train_s = (round(time.time()-t1), round(time.process_time()-c1))
epochs = getattr(model.trainer, 'epoch', None)
t2 = time.time()
res = model.predict([str(f) for f in va[0]], imgsz=a.imgsz, conf=a.conf, device='cpu', verbose=False, max_det=300)
pred_ms = (time.time()-t2)*1000/len(va[0])
preds = [(r.boxes.xyxy.float(), r.boxes.cls.long()+1, r.boxes.conf.float()) for r in res]   # labels 1.. as ours
targs = [(torch.tensor(bs, dtype=torch.float32).view(-1, 4), torch.tensor([names.index(l)+1 for l in ls]))
         for bs,ls in va[1]]                                                 # pixel boxes of the original images
m,aps = mean_ap(preds, targs, 0.5)
out = dict(model='yolov8n.yaml (random weights)', ultralytics=ultralytics.__version__, settings=vars(a),
           n_train=len(tr[0]), n_valid=len(va[0]), mAP=m, per_class={names[int(k)-1]: round(float(v), 4) for k,v in aps.items()},
           epochs=None if epochs is None else epochs+1, train_seconds=train_s[0], train_cpu_seconds=train_s[1],
           predict_ms_per_image=round(pred_ms, 1), seconds=round(time.time()-t0), cpu_seconds=round(time.process_time()-c0),
           machine=machine_info())
print(json.dumps({k: out[k] for k in ('mAP', 'per_class', 'epochs', 'train_seconds', 'train_cpu_seconds', 'seconds')}))
if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(out, indent=1))
