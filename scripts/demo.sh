#!/usr/bin/env bash
# The main job: installs what is missing, builds the package, and serves the demo app. Prints the URL.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

scripts/bootstrap.sh
scripts/build.sh
scripts/stage-demo.sh

addr="${OUTBOX_DEMO_ADDR:-127.0.0.1:8787}"
step "demo: serving www/ on http://$addr/ (Ctrl-C stops it)"
echo "Open http://$addr/"
exec python3 -m http.server --bind "${addr%:*}" --directory www "${addr##*:}"
