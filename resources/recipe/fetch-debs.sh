#!/usr/bin/env bash
# Downloads the Debian text packages the recipe trains on into DIR (default .tdata, git-ignored via
# .git/info/exclude), on a Debian 12 machine; retrain.sh carries them to the CUDA host and unpacks them.
#   fetch-debs.sh [DIR]          the four packages of the shipped model
#   fetch-debs.sh [DIR] --more   also the eight packages of train.py --more-text and ncompress, which unpacks
#                                the KJV (moretext.py; 29 MB of .debs)
set -euo pipefail
dir=${1:-.tdata}
more=${2:-}
if [ "$dir" = --more ]; then dir=.tdata; more=--more; fi
mkdir -p "$dir"
cd "$dir"
apt-get download fortunes fortunes-min jargon-text dict-gcide
if [ "$more" = --more ]; then
  apt-get download bible-kjv-text perl-doc python3.11-doc debian-reference-en debian-policy developers-reference \
    maint-guide gnu-standards ncompress
elif [ -n "$more" ]; then
  echo "fetch-debs.sh: unknown option $more (expected --more)" >&2
  exit 2
fi
