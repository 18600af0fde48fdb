#!/usr/bin/env python3
"""PyTorch/PIL side of `semples bench` formats figures: decode a JPEG with PIL (to an RGB array)
and load a checkpoint with torch.load, converting every tensor to float32 (best of N runs).

  python scripts/bench_formats_torch.py --jpeg photo.jpg --checkpoint clip-size.pth --iterations 5
Prints one JSON object: {"jpegDecodeMilliseconds": ..., "checkpointLoadSeconds": ...}.
"""
import argparse
import json
import time

import numpy as np
import torch
from PIL import Image


def best(n, f):
    times = []
    for _ in range(max(n, 1)):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jpeg", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    decode = best(a.iterations * 10, lambda: np.asarray(Image.open(a.jpeg).convert("RGB")))

    def load():
        sd = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
        return {k: v.float() for k, v in sd.items()}

    ckpt = best(a.iterations, load)
    print(json.dumps({"jpegDecodeMilliseconds": decode * 1000, "checkpointLoadSeconds": ckpt}))


if __name__ == "__main__":
    main()
