#!/usr/bin/env bash
# The whole test suite. Installs and starts what the tests need (Docker Engine, PostgreSQL,
# busybox-static for test images, catatonit for Berth's own infra image, a registry, OpenSSH client,
# Debian's Chromium for the console's browser tests, iproute2 and iptables for the test machines' network
# namespaces), builds the server and the web console, lints, then runs every
# unit test (beside the code) and integration test (test/) on the real daemon and databases.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
# ESLint 10 (npm run lint, below) needs 20.19; Berth itself runs on 20.
check_node 20.19 "npm test (ESLint 10)"

ensure_packages curl ca-certificates catatonit busybox-static docker-registry apache2-utils openssh-client iproute2 iptables
ensure_chromium
ensure_docker
ensure_postgres
ensure_node_modules
ensure_build
ensure_web_build
npm run lint --silent

export BERTH_TEST_REQUIRE_POSTGRES=1
# Files run two at a time; each integration test works in its own data dir, ports and pod ids.
# The agents' INPUT rules (pods reach the node only in replies) are shared by every test process:
# taken out once, when all of them are done, not by the first file to finish.
# So are the teams' pod networks, which the agents' sweep leaves alone while young: removed here too.
clean_up_after_tests() {
  node --input-type=module -e 'const m = await import("./dist/src/agent/pod-network.js"); await m.removeIsolationRules();' || true
  docker network ls -q --filter label=berth.kind=pod-network | xargs -r docker network rm >/dev/null 2>&1 || true
  # Test machines (test/support/machines.ts) a killed test process left: namespaces berth-m-*, their
  # daemons and containers, veths, the hub address, /var/lib/berth-machines (those of live runs stay).
  node --input-type=module -e 'const m = await import("./dist/test/support/machine-sweep.js"); await m.sweepMachines(true);' || true
}
trap clean_up_after_tests EXIT
node --test --test-concurrency=2 --test-timeout=600000 dist/src dist/test "$@"
