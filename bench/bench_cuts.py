"""What cutting EfficientNet-Lite0 costs: CPU ms per 320-pixel image of a forward pass of each body of `02_body`, on one
thread, the bodies timed in turns (the best of `--reps` turns each), in process CPU time.

    python bench/bench_cuts.py             # EfficientNet-Lite0 cut at stride 8, 16 and 32; tiny_resnet, tiny_cnn, resnet18
    python bench/bench_cuts.py --reps 2    # a quick look"""
import sys, time, argparse, warnings
from pathlib import Path
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated')  # fastai's import
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from fastai.vision.all import create_body, resnet18
from ssd_nbs.body import efficientnet_lite0, tiny_resnet, tiny_cnn, cut_at_stride

def bodies()->dict:
    lite = create_body(efficientnet_lite0(), pretrained=False)
    return {'efficientnet_lite0, stride 8': cut_at_stride(lite, 8), 'efficientnet_lite0, stride 16': cut_at_stride(lite, 16),
            'efficientnet_lite0, stride 32': cut_at_stride(lite, 32),
            'tiny_resnet (stride 8)': create_body(tiny_resnet(), pretrained=False),
            'tiny_cnn (stride 16)': create_body(tiny_cnn(), pretrained=False),
            'resnet18 (stride 32)': create_body(resnet18(), pretrained=False)}

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--reps', type=int, default=5, help='turns: each body is timed once a turn, the best turn is kept')
    p.add_argument('--bs', type=int, default=4, help='images a forward pass')
    a = p.parse_args()
    torch.set_num_threads(1); torch.manual_seed(0)
    ms, x = {k: [] for k in bodies()}, torch.randn(a.bs, 3, 320, 320)
    models = {k: m.eval() for k,m in bodies().items()}
    with torch.no_grad():
        for m in models.values(): m(x)                                   # warm-up
        for _ in range(a.reps):
            for k,m in models.items():
                t0 = time.process_time(); m(x); ms[k].append(1000*(time.process_time()-t0)/a.bs)
    print('| body | CPU ms per 320-px image (best of', a.reps, 'turns) | median |\n|---|---|---|')
    for k,v in ms.items(): print(f'| {k} | {min(v):.1f} | {sorted(v)[len(v)//2]:.1f} |')

if __name__ == '__main__': main()
