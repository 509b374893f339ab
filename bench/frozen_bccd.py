"""BCCD's recipe trained as it is, and with the body's stem and first 3 blocks frozen for all epochs: mAP@0.5 on test.

    python bench/frozen_bccd.py --seeds 42 --out bench/results/frozen_bccd.json
    python bench/frozen_bccd.py --seeds 1 --arms frozen --out bench/results/frozen_bccd.json   # adds to the file
    python bench/frozen_bccd.py --quick                                                          # a check that it runs

Each run is `bench/bccd_body.py`'s (`run`: BCCD trainval -> test, trained as `ssd-train --recipe bccd` trains it,
channels_last). The `frozen` arm adds `FreezeAt`: the stem (Renorm, conv, BatchNorm) and the first 3 blocks of
EfficientNet-Lite0, everything before its stride-8 stage (detectron2's FREEZE_AT=2), keep requires_grad False and
their BatchNorms in eval (ImageNet's running statistics) in every epoch, the first (body frozen, its BatchNorms
training) and the ones after the recipe's unfreeze. Prints mAP@0.5, AP per class and the process CPU seconds of
training of each run; any other option is `bccd_body.py`'s (e.g. `--epochs`)."""
import sys, json
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bccd_body import options, parse, run, FreezeAt
from benchutil import table

ARMS = dict(baseline=lambda: [], frozen=lambda: [FreezeAt()])

p = options(__doc__)
p.add_argument('--seeds', default='42', help='comma-separated seeds; each arm runs once per seed')
p.add_argument('--arms', default='baseline,frozen', help=f'comma-separated, of: {", ".join(ARMS)}')
a = parse(p)
out = Path(a.out) if a.out else None
runs = json.loads(out.read_text())['runs'] if out and out.exists() else []  # the file's runs are kept, a run done again replaced
for seed in map(int, a.seeds.split(',')):
    for arm in a.arms.split(','):
        a.seed = seed
        r = run(a, ARMS[arm]())
        row = dict(arm=arm, seed=seed, mAP=r['mAP'], **r['per_class'], train_cpu_s=r['train_cpu_seconds'],
                   epoch_cpu_s=[c for _,c in r['epoch_seconds']])
        print(json.dumps(row), flush=True)
        if out:
            runs = [o for o in runs if (o['arm'], o['seed']) != (arm, seed)] + [dict(row, run=r)]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(dict(bench='frozen_bccd', runs=runs), indent=1) + '\n')
        else: runs.append(row)
classes = [k for k in runs[-1] if k not in ('arm', 'seed', 'mAP', 'train_cpu_s', 'epoch_cpu_s', 'run')]
print('\n' + table(sorted(runs, key=lambda o: (o['seed'], o['arm'])), ['arm', 'seed', 'mAP', *classes, ('train_cpu_s', 'training CPU s')],
                   dict(mAP='.4f', **{c: '.4f' for c in classes}, train_cpu_s='.0f')))
