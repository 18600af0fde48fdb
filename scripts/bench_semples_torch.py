#!/usr/bin/env python3
"""PyTorch side of the SemPLeS figures of `semples bench`: one stage-(a) iteration at full size
(DeiT-S WeakTr with 20 classes, CLIP ViT-B/32, 224 px, random weights), batch 8 with 12 positive
(image, class) pairs, as SemPLeSBenchSection measures it.

  --mode reference : the loop as the reference writes it (spec §9.2): the whole WeakTr forward with
                     autograd on, the patch tokens detached before the head; CLIP parameters left
                     trainable, so its weight gradients are computed; the class texts encoded per pair
                     every iteration at 77 tokens.
  --mode minimal   : the same necessary work only: backbone under no_grad, CLIP frozen (input
                     gradients only), class-text features computed once.

Prints one JSON object: {"stage_a_seconds": median seconds per iteration}.
"""
import argparse
import importlib.util
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


weaktr = load(os.path.join(HERE, "fixtures", "weaktr.py"), "bench_weaktr")
clipfix = load(os.path.join(HERE, "fixtures", "clip.py"), "bench_clip")

B, C, S = 8, 20, 224


def labels():
    y = torch.zeros(B, C)
    for i in range(B):
        y[i, i % C] = 1
        if i % 2 == 0:
            y[i, (i + 7) % C] = 1
    return y


class DetachedHead(nn.Module):
    """SemPLeS's models123 variant: the head sees detached patch tokens (spec §2.1.6)."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return self.conv(x.detach())


def fine_cams_reference(model, x):
    out = model(x, return_all=True)
    return out["fine_cam"]


def fine_cams_minimal(model, x):
    """Backbone without autograd; AAF + head with autograd."""
    b, _, h, w = x.shape
    hp, wp = h // 16, w // 16
    with torch.no_grad():
        t = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat([model.cls_token.expand(b, -1, -1), t], dim=1) + model.pos_embed
        attns, feats = [], []
        for blk in model.blocks:
            t, a, o = blk(t)
            attns.append(a)
            feats.append(o)
    Cn, L, H, n = model.C, model.depth, model.heads, t.shape[1]
    hd = model.dim // H
    attn_stack = torch.stack(attns).permute(1, 2, 0, 3, 4).reshape(b, H * L, n, n)
    feat_stack = torch.stack(feats).view(L, b, n, hd, H).permute(1, 4, 0, 2, 3).reshape(b, H * L, n, hd)
    w_aaf = model.adaptive_attention_fusion.weights(feat_stack)
    fused = (attn_stack * w_aaf[:, :, None, None]).mean(dim=1)
    x_patch = t[:, Cn:].reshape(b, hp, wp, model.dim).permute(0, 3, 1, 2)
    logits = model.head(x_patch)
    cams = fused[:, :Cn, Cn:].reshape(b, Cn, hp, wp) * F.relu(logits)
    return torch.matmul(fused[:, Cn:, Cn:], cams.reshape(b, Cn, -1).transpose(1, 2)).transpose(1, 2).reshape(b, Cn, hp, wp)


def masks_and_pairs(fine, x, y, eps=0.1):
    up = F.interpolate(fine, size=(S, S), mode="bilinear", align_corners=True).reshape(B * C, 1, S, S)
    lo = up.min(dim=2, keepdim=True)[0].min(dim=3, keepdim=True)[0]
    hi = up.max(dim=2, keepdim=True)[0].max(dim=3, keepdim=True)[0]
    m = ((up - lo) / (hi - lo + eps)).reshape(B, C, S, S)
    pairs = [(n, k) for n in range(B) for k in range(C) if y[n, k] == 1]
    fg = torch.stack([m[n, k][None] * x[n] for n, k in pairs])
    bg = torch.stack([(1 - m[n, k][None]) * x[n] for n, k in pairs])
    return pairs, fg, bg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["reference", "minimal"], required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = weaktr.WeakTrRef(num_classes=C, dim=384, depth=12, heads=6, reduction=8, pool="max", grid=14)
    mm, _ = clipfix.load_reference_module("model")
    clip = mm.CLIP(512, 224, 12, 768, 32, 77, 49408, 512, 8, 12).float().eval()
    trained = list(model.head.parameters()) + list(model.adaptive_attention_fusion.parameters())
    reference = args.mode == "reference"
    if reference:
        model.head = DetachedHead(model.head)
        trained = list(model.head.parameters()) + list(model.adaptive_attention_fusion.parameters())
    else:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in trained:
            p.requires_grad_(True)
        for p in clip.parameters():
            p.requires_grad_(False)
    model.train()
    opt = torch.optim.AdamW(trained, lr=6.4e-5, weight_decay=0.03)
    x = torch.randn(B, 3, S, S)
    y = labels()
    # "a photo of {name}." ids: SOT, 3 + 1..2 name tokens, '.', EOT, zeros (77 tokens).
    ids = torch.zeros(C, 77, dtype=torch.long)
    for k in range(C):
        row = [49406, 320, 1125, 539, 1000 + k] + ([2000 + k] if k % 4 == 0 else []) + [269, 49407]
        ids[k, :len(row)] = torch.tensor(row)
    if not reference:
        with torch.no_grad():
            text_all = F.normalize(clip.encode_text(ids), dim=-1)

    def iteration():
        opt.zero_grad()
        fine = (fine_cams_reference if reference else fine_cams_minimal)(model, x)
        pairs, fg, bg = masks_and_pairs(fine, x, y)
        ks = torch.tensor([k for _, k in pairs])
        text = F.normalize(clip.encode_text(ids[ks]), dim=-1) if reference else text_all[ks]
        s_fg = (F.normalize(clip.encode_image(fg), dim=-1) * text).sum(-1)
        s_bg = (F.normalize(clip.encode_image(bg), dim=-1) * text).sum(-1)
        loss = -torch.log(s_fg.clamp(1e-4, 0.9999)).mean() - 2.4 * torch.log(1 - s_bg.clamp(1e-4, 0.9999)).mean()
        loss.backward()
        opt.step()

    times = []
    for _ in range(args.iterations + 1):
        t0 = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t0)
    times = sorted(times[1:])
    print(json.dumps({"stage_a_seconds": times[len(times) // 2]}))


if __name__ == "__main__":
    main()
