#!/usr/bin/env python3
"""PyTorch eager baseline for the WeakTr CAM-generation benchmark (same workload as
SemplesPipeline.CAMBenchmark): DeiT-S WeakTr with random weights (C 20, reduction 8, max pooling),
500×375 images at scales 1.0 and 1.2 with flips (spec §5), images per second; peak resident memory
above the post-load baseline for one 640×480 image at scale 1.2 (with its flip). Prints JSON.

Usage: python scripts/bench_weaktr_torch.py [--images 4] [--threads 2]
"""
import argparse
import importlib.util
import json
import os
import resource
import time

import numpy as np
import torch


def load_reference():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "weaktr.py")
    spec = importlib.util.spec_from_file_location("weaktr_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return status_bytes("VmRSS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--height", type=int, default=375)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ref = load_reference()
    model = ref.WeakTrRef(num_classes=20, dim=384, depth=12, heads=6, reduction=8, pool="max").eval()
    ref.randomise(model, seed=0)
    labels = [0.0] * 20
    labels[0] = labels[7] = 1.0
    rng = np.random.default_rng(0)

    memory_image = ref.synthetic_image(rng, 640, 480)
    baseline = reset_peak()
    ref.multiscale_cams(model, memory_image, labels, [1.2])
    peak = status_bytes("VmHWM")

    images = [ref.synthetic_image(rng, args.width, args.height) for _ in range(args.images + 1)]
    ref.multiscale_cams(model, images[0], labels, [1.0, 1.2])
    start = time.perf_counter()
    cpu_start = cpu_seconds()
    for img in images[1:]:
        ref.multiscale_cams(model, img, labels, [1.0, 1.2])
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    print(json.dumps(dict(
        imagesPerSecond=args.images / seconds, secondsPerImage=seconds / args.images, images=args.images,
        cpuSecondsPerImage=cpu / args.images, attentionMemory="keep",
        threads=args.threads, width=args.width, height=args.height, scales=[1.0, 1.2],
        peakMemoryBytes=max(0, peak - baseline), peakResidentBytes=peak,
        memoryWidth=640, memoryHeight=480, memoryScales=[1.2], torch=torch.__version__), sort_keys=True))


if __name__ == "__main__":
    main()
