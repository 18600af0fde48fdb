#!/usr/bin/env bash
# Creates a Python environment with PyTorch, numpy, Pillow and safetensors, used only to regenerate
# the golden fixtures and to benchmark against PyTorch on this machine. Tests never need it.
# Usage: scripts/setup-torch.sh [VENV_DIR]   (default .venv-torch; prints the python path)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-${SEMPLES_TORCH_VENV:-.venv-torch}}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, numpy, PIL, safetensors, scipy, pydensecrf, clip, ftfy" 2>/dev/null; then
    "$venv/bin/pip" install -q --upgrade pip >/dev/null
    "$venv/bin/pip" install -q torch numpy pillow safetensors scipy pydensecrf2
    # OpenAI's tokenizer and model code, the reference for the CLIP fixtures.
    "$venv/bin/pip" install -q --no-deps clip-anytorch ftfy regex wcwidth
    # timm 0.5.4's scheduler and augmentation files, the reference for the schedule fixtures.
    "$venv/bin/pip" install -q --no-deps timm==0.5.4
fi
echo "$venv/bin/python"
