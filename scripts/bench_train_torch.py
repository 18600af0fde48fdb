#!/usr/bin/env python3
"""PyTorch baseline for the WeakTr training-step benchmark: the training forward of
scripts/fixtures/weaktr_train.py (WeakTr:`models.py` gradient paths, DropPath per sample), the three
MultiLabelSoftMargin terms, backward and AdamW, on random weights and inputs.

Prints one JSON line: {"images_per_second": …, "seconds_per_step": …, "forward_seconds": …,
"backward_seconds": …, "optimizer_seconds": …, "threads": …, "torch": …}.

Usage:  python scripts/bench_train_torch.py [--batch 8] [--steps 3] [--threads 2] [--size 224]
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
from weaktr import WeakTrRef  # noqa: E402
from weaktr_train import train_forward  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--drop-path", type=float, default=0.1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    grid = args.size // 16
    model = WeakTrRef(args.classes, dim=384, depth=12, heads=6, reduction=8, pool="max", grid=grid)
    with torch.no_grad():
        model.cls_token.normal_(0, 0.02)
        model.pos_embed.normal_(0, 0.02)
    img = torch.randn(args.batch, 3, args.size, args.size)
    targets = (torch.rand(args.batch, args.classes) < 0.1).float()
    mlsm = torch.nn.MultiLabelSoftMarginLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.03)
    depth = 12
    rates = [args.drop_path * i / (depth - 1) for i in range(depth)]

    def scales():
        out = []
        for r in rates:
            keep = 1 - r
            out.append(tuple((torch.rand(args.batch) < keep).float() / keep for _ in range(2)))
        return out

    fwd = bwd = stp = 0.0
    for s in range(args.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        cls_pred, coarse_pred, fine_pred, _ = train_forward(model, img, scales())
        loss = mlsm(cls_pred, targets) + mlsm(coarse_pred, targets) + mlsm(fine_pred, targets)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if s > 0:
            fwd += t1 - t0
            bwd += t2 - t1
            stp += t3 - t2
    total = fwd + bwd + stp
    n = max(args.steps, 1)
    print(json.dumps(dict(images_per_second=args.batch * args.steps / total, seconds_per_step=total / n,
                          forward_seconds=fwd / n, backward_seconds=bwd / n, optimizer_seconds=stp / n,
                          threads=args.threads, batch=args.batch, torch=torch.__version__)))


if __name__ == "__main__":
    main()
