#!/usr/bin/env python3
"""PyTorch side of `semples bench`: the same figures as SemplesEngine's EngineBenchmark.

Prints one JSON object: {"threads": n, "torch": version, "figures": [{name, medianMilliseconds,
minimumMilliseconds, gflops, iterations}]}.

  python scripts/bench_torch.py --threads 2 --iterations 10 --warmup 2

- vit_s16_block_*: a DeiT/WeakTr block (B=8, T=216, D=384, 6 heads, GELU, LayerNorm eps 1e-6) whose
  attention is computed explicitly and keeps its probabilities, as WeakTr's Attention does.
  forward runs under no_grad; forward_backward is forward + full backward (parameter and input grads).
- vit_b32_block_*: a CLIP ResidualAttentionBlock (B=8, T=50, D=768, 12 heads, QuickGELU, eps 1e-5)
  through torch.nn.MultiheadAttention (need_weights=False), as CLIP runs it. forward under no_grad;
  forward_input_gradient has frozen parameters and computes the input gradient only.
- sgemm: torch.mm at [1728, 384] x [384, 1536] (the ViT-S fc1 shape), GFLOP/s.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class DeiTBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5).softmax(dim=-1)
        o = self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))
        x = x + o
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)))), attn


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class CLIPBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads)
        self.ln_1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), QuickGELU(), nn.Linear(4 * d, d))
        self.ln_2 = nn.LayerNorm(d)

    def forward(self, x):  # x: [T, B, D] (sequence first, as CLIP)
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


def measure(name, fn, iterations, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, iterations)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    n = len(times)
    median = times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2
    return {"name": name, "medianMilliseconds": median, "minimumMilliseconds": times[0], "gflops": None,
            "iterations": n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated figure names")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    only = set(filter(None, args.only.split(",")))
    want = lambda n: not only or n in only
    figures = []

    blk = DeiTBlock(384, 6)
    x = torch.randn(8, 216, 384)
    dy = torch.randn(8, 216, 384) * 0.01
    if want("vit_s16_block_forward"):
        def fwd():
            with torch.no_grad():
                blk(x)
        figures.append(measure("vit_s16_block_forward", fwd, args.iterations, args.warmup))
    if want("vit_s16_block_forward_backward"):
        xg = x.clone().requires_grad_(True)

        def fwd_bwd():
            blk.zero_grad(set_to_none=False)
            xg.grad = None
            y, _ = blk(xg)
            y.backward(dy)
        figures.append(measure("vit_s16_block_forward_backward", fwd_bwd, args.iterations, args.warmup))

    cb = CLIPBlock(768, 12)
    for p in cb.parameters():
        p.requires_grad_(False)
    x = torch.randn(50, 8, 768)
    dy = torch.randn(50, 8, 768) * 0.01
    if want("vit_b32_block_forward"):
        def fwd():
            with torch.no_grad():
                cb(x)
        figures.append(measure("vit_b32_block_forward", fwd, args.iterations, args.warmup))
    if want("vit_b32_block_forward_input_gradient"):
        xg = x.clone().requires_grad_(True)

        def fwd_in():
            xg.grad = None
            cb(xg).backward(dy)
        figures.append(measure("vit_b32_block_forward_input_gradient", fwd_in, args.iterations, args.warmup))

    if want("sgemm"):
        a, b = torch.randn(1728, 384), torch.randn(1536, 384)
        c = torch.empty(1728, 1536)
        bt = b.t()
        f = measure("sgemm", lambda: torch.mm(a, bt, out=c), args.iterations, args.warmup)
        f["gflops"] = 2 * 1728 * 1536 * 384 / (f["medianMilliseconds"] * 1e6)
        figures.append(f)

    print(json.dumps({"threads": args.threads, "torch": torch.__version__, "figures": figures}))


if __name__ == "__main__":
    main()
