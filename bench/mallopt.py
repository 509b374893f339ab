#!/usr/bin/env python
"""`ssd-train`'s `keep_freed_memory` (glibc's mallopt: no mmap of large blocks, no trim) on the unfrozen BCCD step.

    python bench/mallopt.py [--rounds 3] [--steps 5] [--json bench/results/mallopt.json]

A training step as `ssd-train` runs the BCCD recipe's unfrozen epochs: `build_ssd(BCCD, 3)` (pretrained
EfficientNet-Lite0 cut at stride 8, 320 px), channels_last model, batch 8 of random images with 1-26 random boxes,
forward, `SSDLoss`, backward, Adam step. malloc's setting is the process's, so each measurement is a child process:
`default` (glibc's malloc as it comes) and `keep` (`ssd_nbs.train.keep_freed_memory()` first), in turns, `--rounds`
times. Each child times `--steps` steps after 2 warm-up steps: process CPU seconds (one thread) and minor page faults."""
from __future__ import annotations
import os, sys, json, time, argparse, resource, statistics, subprocess
sys.argv += [] if any(a.startswith('--threads') for a in sys.argv) else ['--threads=1']
import benchutil
from benchutil import machine_info, table, write_json

def child(mode:str, steps:int):
    from ssd_nbs.train import keep_freed_memory
    kept = keep_freed_memory() if mode == 'keep' else None
    import torch
    from ssd_nbs.config import BCCD, build_ssd
    from bench_train_step import batch
    torch.set_num_threads(1)
    model, loss_func = build_ssd(BCCD, 3)
    model = model.train().to(memory_format=torch.channels_last)               # as ssd-train's `ChannelsLast`
    x, bb, lb = batch(BCCD.bs, BCCD.size, torch.Generator().manual_seed(0), n_max=26)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    def step(): loss_func(model(x), bb, lb).backward(); opt.step(); opt.zero_grad()
    for _ in range(2): step()
    ts, faults = [], []
    for _ in range(steps):
        f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
        step()
        ts.append(time.process_time() - t0); faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    print(json.dumps(dict(mode=mode, mallopt=kept, seconds=ts, faults=faults, bs=BCCD.bs)))

def main():
    p = benchutil.parser(__doc__)
    p.add_argument('--rounds', type=int, default=3); p.add_argument('--steps', type=int, default=5)
    p.add_argument('--child', choices=['default', 'keep'], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child: return child(a.child, a.steps)
    info = machine_info()
    print(f"# python {' '.join(sys.argv)}\n# {info['cpu']}, {info['cores']} cores, torch {info['torch']}, 1 thread, "
          f"process CPU time, load {' '.join(f'{o:.2f}' for o in info['loadavg_at_start'] or [])}, git {info['git']}\n", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    runs = []
    for r in range(a.rounds):
        for mode in ('default', 'keep'):
            out = subprocess.run([sys.executable, __file__, '--child', mode, '--steps', str(a.steps)], env=env,
                                 capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.abspath(__file__)))
            res = json.loads(out.stdout.strip().splitlines()[-1]); res['round'] = r; runs.append(res)
            print(f"round {r+1} {mode}: {statistics.median(res['seconds']):.3f} s a step, "
                  f"{statistics.median(res['faults'])} minor faults a step", flush=True)
    by = {m: [o for o in runs if o['mode'] == m] for m in ('default', 'keep')}
    ratios = [statistics.median(d['seconds'])/statistics.median(k['seconds']) for d,k in zip(by['default'], by['keep'])]
    rows = [dict(malloc=m, step=statistics.median(sum((o['seconds'] for o in rs), [])),
                 ips=rs[0]['bs']/statistics.median(sum((o['seconds'] for o in rs), [])),
                 faults=statistics.median(sum((o['faults'] for o in rs), []))) for m,rs in by.items()]
    print('\n' + table(rows, [('malloc', 'malloc'), ('step', 'CPU s a step (median)'), ('ips', 'images/s'),
                              ('faults', 'minor page faults a step')], dict(step='.3f', ips='.2f', faults=',.0f')))
    print(f"\nspeed-up of keep over default, per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f}")
    if a.json: write_json(a.json, dict(info=info, runs=runs, ratios=ratios))

if __name__ == '__main__': main()
