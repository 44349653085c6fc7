#!/usr/bin/env bash
# The main job: install what is missing, build (release), run the clone demo on the embedded default
# data directory (/var/lib/forkengine). Extra arguments go to `forkctl demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target forkctl
exec ./build/release/engine/forkctl demo "$@"
