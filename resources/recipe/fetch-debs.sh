#!/usr/bin/env bash
# Downloads the Debian text packages the recipe trains on into DIR (default .tdata, git-ignored via
# .git/info/exclude), on a Debian 12 machine; retrain.sh carries them to the CUDA host and unpacks them.
#   fetch-debs.sh [DIR]          the four packages of the shipped model
#   fetch-debs.sh [DIR] --more   also the eight packages of train.py --more-text and ncompress, which unpacks
#                                the KJV (moretext.py; 29 MB of .debs)
#   fetch-debs.sh [DIR] --more-compact
#                                the same, with python3.11-doc repacked to the HTML pages moretext.py reads
#                                (12.6 -> 3.8 MB, the same text), so that DIR (36 MB) and the repository fit
#                                the device's 64 MiB carry
set -euo pipefail
dir=${1:-.tdata}
more=${2:-}
case "$dir" in --more | --more-compact) more=$dir dir=.tdata ;; esac
case "$more" in "" | --more | --more-compact) ;; *)
  echo "fetch-debs.sh: unknown option $more (expected --more or --more-compact)" >&2
  exit 2
  ;;
esac
mkdir -p "$dir"
cd "$dir"
apt-get download fortunes fortunes-min jargon-text dict-gcide
[ -z "$more" ] && exit 0
apt-get download bible-kjv-text perl-doc python3.11-doc debian-reference-en debian-policy developers-reference \
  maint-guide gnu-standards ncompress
if [ "$more" = --more-compact ]; then
  deb=$(ls python3.11-doc_*.deb)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  dpkg-deb -R "$deb" "$tmp/p"
  find "$tmp/p" -path "$tmp/p/DEBIAN" -prune -o \( -type f ! -name '*.html' -o -type l \) -print0 | xargs -0 rm -f
  rm -f "$tmp/p/DEBIAN/md5sums" "$tmp/p/DEBIAN/conffiles"
  dpkg-deb -Zxz -b "$tmp/p" "$tmp/repacked.deb" >/dev/null
  mv "$tmp/repacked.deb" "$deb"
fi
