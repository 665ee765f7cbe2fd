#!/usr/bin/env bash
# Spark GPU discovery script: prints the GPUs this executor can use as Spark's resource JSON.
# Honours CUDA_VISIBLE_DEVICES, as Kubernetes' device plugin and Docker's --gpus set it.
set -euo pipefail
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  ids=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n')
else
  ids=$(nvidia-smi --query-gpu=index --format=csv,noheader)
fi
addresses=$(echo "$ids" | sed '/^\s*$/d' | sed 's/.*/"&"/' | paste -sd, -)
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
