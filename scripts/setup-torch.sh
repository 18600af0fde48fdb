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
if ! "$venv/bin/python" -c "import torch, numpy, PIL, safetensors, scipy, pydensecrf" 2>/dev/null; then
    "$venv/bin/pip" install -q --upgrade pip >/dev/null
    "$venv/bin/pip" install -q torch numpy pillow safetensors scipy pydensecrf2
fi
echo "$venv/bin/python"
