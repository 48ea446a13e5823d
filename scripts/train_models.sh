#!/usr/bin/env bash
# Reproduce the shipped model registry (src/samplescout/models) on CPU.
# Usage: scripts/train_models.sh REGISTRY_DIR   (an empty or new directory)
# Takes about 20-25 minutes on 2 CPU cores; seeds are fixed, data comes from the simulator.
set -euo pipefail
REG="${1:?usage: scripts/train_models.sh REGISTRY_DIR (an empty or new directory)}"
if [ -d "$REG" ] && [ -n "$(ls -A "$REG")" ]; then
    echo "$REG is not empty: give an empty or new directory (the shipped registry is" \
        "src/samplescout/models; compare, then copy the versions over)" >&2
    exit 2
fi
PY="${PYTHON:-python}"
SEEDS="1000 1001 1002 1003 1004 1005"
SEEDS_ID="$SEEDS 1006 1007 1008 1009 1010 1011"
"$PY" -m samplescout train select       --registry "$REG" --steps 1200 --seed 0 --data-seeds $SEEDS --device cpu
# select-prior@1 (the select-default alias since 2026-12-07; about 2 minutes)
"$PY" -m samplescout train select       --registry "$REG" --steps 1200 --seed 0 --data-seeds $SEEDS --device cpu \
    --architecture prior-unet --coarse-scales 1 2 --ignore-markers --ignore-band 2 \
    --residual-weight 10 --name select-prior
"$PY" -m samplescout train select-patch --registry "$REG" --steps 500  --seed 0 --data-seeds $SEEDS --device cpu
# identify-cnn@2 (identify-cnn@1, the first model, came from --steps 600 on $SEEDS, unbalanced,
# width 12); in a new registry this registers as identify-cnn@1.
"$PY" -m samplescout train identify     --registry "$REG" --steps 4800 --seed 0 --data-seeds $SEEDS_ID \
    --balanced --width 16 --eval-seeds 5000 5001 5002 --device cpu
