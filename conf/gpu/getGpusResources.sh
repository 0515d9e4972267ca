#!/usr/bin/env bash
# Spark GPU discovery script: prints the GPUs of this host as a Spark ResourceInformation JSON,
#   {"name":"gpu","addresses":["0","1",...]}
# The addresses are CUDA device indices; batchinfer passes a task's address to onnxruntime as
# the CUDA device_id (Spark does not set CUDA_VISIBLE_DEVICES). Same as Spark's example script
# (examples/src/main/scripts/getGpusResources.sh). Needs nvidia-smi (the NVIDIA driver).
set -euo pipefail
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "getGpusResources.sh: nvidia-smi not found; is the NVIDIA driver installed on this node?" >&2
  exit 1
fi
ADDRS=$(nvidia-smi --query-gpu=index --format=csv,noheader | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' | sed -e ':a' -e 'N' -e '$!ba' -e 's/\n/","/g')
if [ -z "$ADDRS" ]; then
  echo "getGpusResources.sh: nvidia-smi lists no GPU" >&2
  exit 1
fi
echo "{\"name\": \"gpu\", \"addresses\":[\"$ADDRS\"]}"
