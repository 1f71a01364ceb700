#!/usr/bin/env bash
# Benchmarks: `npm run bench -- <name> [options]` runs dist/bench/<name>.js after setting up what it
# needs (Docker, the busybox-static the test image is built from, npm dependencies, a build).
# With no name, lists the benchmarks: the files in bench/ whose first line reads `// bench: ...`.
# Each prints its figures last, in a summary block; see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

list() {
  echo "usage: npm run bench -- <name> [options]"
  echo "benchmarks:"
  for f in bench/*.ts; do
    local first
    first=$(head -n 1 "$f")
    case "$first" in
      "// bench: "*) printf '  %s\n' "${first#// bench: }" ;;
    esac
  done
}

name="${1:-}"
if [ -z "$name" ] || [ "$name" = "--help" ] || [ "$name" = "-h" ] || [ "$name" = "--list" ]; then
  list
  exit 0
fi
shift
if [ ! -f "bench/$name.ts" ] || ! head -n 1 "bench/$name.ts" | grep -q '^// bench: '; then
  echo "no benchmark named '$name'" >&2
  list >&2
  exit 2
fi

. scripts/setup.sh
check_node
ensure_packages busybox-static catatonit
case "$name" in
  proxy) ensure_packages wrk nginx ;;
  ssh) ensure_packages openssh-client openssh-server ;;
  console) ensure_chromium ;;
  failover|fanout) ensure_packages postgresql ;;
esac
ensure_docker
ensure_node_modules
ensure_build
[ "$name" = console ] && ensure_web_build
exec node "dist/bench/$name.js" "$@"
