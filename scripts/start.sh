#!/usr/bin/env bash
# Starts Berth on this machine: installs Docker Engine (Debian's docker.io) and starts dockerd when
# none answers, installs catatonit (multi-container pods' infra image is built from it, no registry), installs npm dependencies and builds when needed, then runs `berth server`.
# Arguments go to `berth server` (e.g. `npm start -- --port 8000`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
check_node

ensure_packages curl ca-certificates catatonit
ensure_docker
ensure_node_modules
ensure_build
ensure_web_build
exec node bin/berth.js server "$@"
