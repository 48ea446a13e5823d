#!/usr/bin/env bash
# Reproduce the shipped model registry (src/samplescout/models) on CPU.
# Usage: scripts/train_models.sh [REGISTRY_DIR]   (give an empty or new directory)
# Takes about 15-20 minutes on 2 CPU cores; seeds are fixed, data comes from the simulator.
set -euo pipefail
REG="${1:-src/samplescout/models}"
PY="${PYTHON:-python}"
SEEDS="1000 1001 1002 1003 1004 1005"
"$PY" -m samplescout train select       --registry "$REG" --steps 1200 --seed 0 --data-seeds $SEEDS --device cpu
"$PY" -m samplescout train select-patch --registry "$REG" --steps 500  --seed 0 --data-seeds $SEEDS --device cpu
"$PY" -m samplescout train identify     --registry "$REG" --steps 600  --seed 0 --data-seeds $SEEDS --device cpu
