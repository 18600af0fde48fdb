#!/usr/bin/env bash
# Regenerates every golden fixture with PyTorch (needs scripts/setup-torch.sh once).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${SEMPLES_PYTHON:-$(scripts/setup-torch.sh)}"
for script in scripts/fixtures/*.py; do
    echo "fixtures: $script"
    "$python" "$script"
done
