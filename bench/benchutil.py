"Shared helpers of the `bench/` scripts: machine info, timing, markdown tables and JSON output."
from __future__ import annotations
import os, sys, json, time, platform, statistics, subprocess, argparse, warnings
from pathlib import Path

warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated')  # fastai's import: noise on stderr
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))                # run from a checkout, installed or not

import torch

def cpu_model()->str:
    try:
        for l in Path('/proc/cpuinfo').read_text().splitlines():
            if l.startswith('model name'): return l.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()

def git_rev()->str|None:
    try:
        rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return (rev + ('+dirty' if dirty else '')) or None
    except OSError: return None

def machine_info()->dict:
    import torchvision
    try: load = os.getloadavg()
    except OSError: load = None
    try: import fastai; fa = fastai.__version__
    except ImportError: fa = None
    return dict(cpu=cpu_model(), cores=os.cpu_count(), affinity=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
                torch_threads=torch.get_num_threads(), torch=torch.__version__, torchvision=torchvision.__version__,
                fastai=fa, python=platform.python_version(), platform=platform.platform(), git=git_rev(),
                loadavg_at_start=load, niceness=os.nice(0), date=time.strftime('%Y-%m-%d %H:%M:%S %z'))

def parser(doc:str)->argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument('--quick', action='store_true', help='tiny sizes and few repetitions: checks that it runs, numbers are rough')
    p.add_argument('--json', metavar='PATH', help='also write the results, with machine info, to this JSON file')
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads (default 2)')
    p.add_argument('--malloc', choices=['default', 'keep'], default='default',
                   help="'keep': glibc keeps freed memory instead of giving it back to the system (mallopt), so large "
                        "tensors made again and again do not page-fault; it applies to every model timed alike")
    p.add_argument('--clock', choices=['wall', 'cpu'], default='wall',
                   help="'wall' (default) or 'cpu': CPU time of the process, for a busy machine; use it with --threads 1")
    return p

CLOCK = time.perf_counter

def keep_freed_memory()->bool:
    "Ask glibc's malloc to keep freed memory for reuse (as tcmalloc or jemalloc do): no mmap/munmap of large blocks, no trim"
    import ctypes, ctypes.util
    try: libc = ctypes.CDLL(ctypes.util.find_library('c'))
    except OSError: return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3                           # glibc's malloc.h
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 2**30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))

def setup(args):
    global CLOCK
    if getattr(args, 'malloc', 'default') == 'keep' and not keep_freed_memory():
        print('# warning: --malloc keep: mallopt is not available (not glibc?); timing with the default malloc', file=sys.stderr)
    torch.set_num_threads(args.threads)
    if getattr(args, 'clock', 'wall') == 'cpu':
        CLOCK = time.process_time
        if args.threads > 1: print('# warning: --clock cpu adds up the CPU time of all threads; use --threads 1', file=sys.stderr)
    info = machine_info()
    info['clock'] = getattr(args, 'clock', 'wall')
    info['malloc'] = getattr(args, 'malloc', 'default')
    if info['loadavg_at_start'] and info['loadavg_at_start'][0] > 0.5:
        print(f"# warning: the machine is busy (load {info['loadavg_at_start'][0]:.2f}): wall-clock times are not reliable, "
              f"and several threads can be much slower than one; for a rough check use --threads 1 --clock cpu",
              file=sys.stderr)
    load = ' '.join(f'{o:.2f}' for o in info['loadavg_at_start']) if info['loadavg_at_start'] else '?'
    print(f"# {' '.join(['python', *sys.argv])}\n# {info['cpu']}, {info['cores']} cores, torch {info['torch']}, "
          f"{info['torch_threads']} threads, {info['clock']} clock, malloc {info['malloc']}, load {load}, git {info['git']}\n",
          flush=True)
    return info

def time_round_robin(fns:dict, reps:int, warmup:int=1, min_time:float=0.)->dict:
    "Time each function of `fns` `reps` times, in turns (so that a busy moment hurts them all alike): name -> seconds list"
    for _ in range(warmup):
        for f in fns.values(): f()
    res = {k: [] for k in fns}
    t_start = time.perf_counter()
    i = 0
    while i < reps or (time.perf_counter()-t_start < min_time and i < 100*reps):
        for k,f in fns.items():
            t = CLOCK(); f(); res[k].append(CLOCK()-t)
        i += 1
    return res

def med(ts:list)->float: return statistics.median(ts)

def table(rows:list, cols:list, fmt:dict|None=None)->str:
    "A markdown table of the dicts `rows`, with columns `cols` (key or (key, header)), formatted by `fmt[key]`"
    fmt = fmt or {}
    cols = [(c, c) if isinstance(c, str) else c for c in cols]
    def cell(r, k):
        v = r.get(k)
        if v is None: return ''
        f = fmt.get(k)
        return f(v) if callable(f) else (format(v, f) if f else str(v))
    lines = ['| ' + ' | '.join(h for _,h in cols) + ' |', '|' + '|'.join('---' for _ in cols) + '|']
    lines += ['| ' + ' | '.join(cell(r, k) for k,_ in cols) + ' |' for r in rows]
    return '\n'.join(lines)

def write_json(path, obj):
    if not path: return
    p = Path(path); p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=1, default=float) + '\n')
    print(f'\nwrote {p}')

def setup_reps(doc:str, what:str):
    "Parse the options of a timing script with `--reps`: (args, machine info, reps, a seeded generator)"
    p = parser(doc.split('\n\n')[0])
    p.add_argument('--reps', type=int, default=None, help=f'timed {what} of each kind (default 20; quick 3)')
    args = p.parse_args()
    info = setup(args)
    torch.manual_seed(0)
    return args, info, args.reps or (3 if args.quick else 20), torch.Generator().manual_seed(0)

def matches(loss, preds, bboxes, labels, match):
    "The start of `SSDLoss.parts` for a variant of it: (box activations, class scores, boxes, anchors, (b, a, g, l), n_pos)"
    from ssd_nbs.core import plain
    box_act,clas = plain(*preds)
    bboxes,labels = plain(bboxes, labels.long())
    anc = loss.anchors.to(box_act.device)
    m = match(bboxes, anc, loss.match_iou, valid=labels > 0)              # (bs, n_anchors) matched object or -1
    b,a = (m >= 0).nonzero(as_tuple=True)
    g = m[b,a]
    return box_act, clas, bboxes, anc, (b, a, g, labels[b,g]), max(len(b), 1)
