#!/usr/bin/env bash
# Downloads the Debian text packages the recipe trains on into DIR (default .tdata, git-ignored via
# .git/info/exclude), on a Debian 12 machine; retrain.sh carries them to the CUDA host and unpacks them.
set -euo pipefail
dir=${1:-.tdata}
mkdir -p "$dir"
cd "$dir"
apt-get download fortunes fortunes-min jargon-text dict-gcide
