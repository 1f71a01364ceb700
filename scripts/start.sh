#!/usr/bin/env bash
# Starts Berth on this machine: installs Docker Engine (Debian's docker.io) and starts dockerd when
# none answers, installs catatonit (multi-container pods' infra image is built from it, no registry), installs npm dependencies and builds when needed, then runs `berth server`.
# Arguments go to `berth server` (e.g. `npm start -- --port 8000`). On a machine that joins a
# server, `npm start -- agent --server URL` (with BERTH_TOKEN=<join token>) does the same set-up and
# runs `berth agent` instead (docs/cluster.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
check_node

role=server
if [ "${1:-}" = agent ]; then
  role=agent
  shift
fi
ensure_packages curl ca-certificates catatonit
ensure_docker
ensure_node_modules
ensure_build
# The console is the server's; a joined machine serves none.
if [ "$role" = server ]; then ensure_web_build; fi
exec node bin/berth.js "$role" "$@"
