#!/usr/bin/env bash
# Applies session 6's GPU changes (written without a device, compiled only) to the working tree, with
# session 5's statistics pass kept beside them as the A/B baseline; then, on the CUDA host:
#   tests/kernels_cuda/run_session7.sh          (one device command, about 9 minutes)
# Land what passes (commit the applied files, drop this folder); revert what does not.
set -euo pipefail
cd "$(dirname "$0")/../../.."
mkdir -p tests/kernels_cuda/ab_variants/A
cp kernels/cuda/tc_stats.cuh kernels/cuda/attention_tc.cu tests/kernels_cuda/ab_variants/A/
git apply tests/kernels_cuda/pending/session6-gpu.patch
git status --short
