#!/bin/sh
# Builds the folder of pure-Python packages that lets transformers 5.17's
# `transformers serve` run on a Python 3.12 that has torch and transformers
# but no FastAPI, uvicorn, pydantic or openai and no package index (the lent
# GPU machines). Everything comes from Debian's archive, at the versions the
# recorded sweep used; nothing here is compiled, so the folder works on any
# Python >= 3.10 and is put first on PYTHONPATH for the server only.
#
#   pydeps.sh MIRROR OUT_DIR      MIRROR: a Debian mirror's base URL
#
# It uses its own apt configuration and lists under a temporary folder and
# changes nothing in the machine's apt setup. Needs apt-get and dpkg-deb.
set -eu
MIRROR=$1
OUT=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/etc" "$W/lists/partial" "$W/cache/archives/partial" "$W/debs" "$W/x" "$OUT"
cat > "$W/etc/serve.sources" <<SRC
Types: deb
URIs: $MIRROR
Suites: bookworm trixie sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
APT="-o Dir::Etc::sourcelist=/dev/null -o Dir::Etc::sourceparts=$W/etc -o Dir::State::lists=$W/lists
     -o Dir::Cache=$W/cache -o Dir::State::status=/dev/null -o APT::Architecture=amd64"
# shellcheck disable=SC2086
apt-get $APT update >/dev/null
cd "$W/debs"
# pydantic 1 (pure Python; Debian's pydantic 2 needs its compiled core, built
# only for Debian's own Python), FastAPI/Starlette/uvicorn that still accept
# pydantic 1 and work with anyio 4, and an openai with every type the serving
# code imports (openai >= 1.99 for the Responses API events), which imports
# httpx2 at import time.
# shellcheck disable=SC2086
apt-get $APT download \
  python3-pydantic=1.10.4-1+deb12u1 \
  python3-fastapi=0.115.11-4 python3-starlette=0.46.1-3+deb13u3 python3-uvicorn=0.32.0-3 \
  python3-openai=3.6.0-1 python3-httpx2=2.15.1-1 python3-httpcore2=2.15.1-1 python3-truststore=0.10.5-1 \
  python3-sniffio=1.3.1-2 python3-distro=1.9.0-2
for d in ./*.deb; do dpkg-deb -x "$d" "$W/x"; done
cp -r "$W/x/usr/lib/python3/dist-packages/." "$OUT/"
ls "$OUT"
