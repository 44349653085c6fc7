#!/usr/bin/env bash
# Builds forkengine's Debian packages from a release build: forkengine (forkd as a systemd service)
# and forkengine-client (forkctl), into build/release/packages/. Install both on a host with
#   apt install ./build/release/packages/forkengine*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target forkd forkctl fe_packaging_generated
rm -rf build/release/packages
cpack --config build/release/CPackConfig.cmake -B build/release/packages
rm -rf build/release/packages/_CPack_Packages
ls -l build/release/packages/*.deb
