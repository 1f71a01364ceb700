# Shared set-up for start.sh, test.sh and bench.sh: installs and starts what Berth and its tests
# need on a Debian/Ubuntu machine. Sourced, not run. Every step is skipped when already done.

log() { printf '[berth setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

# ensure_packages PKG... — apt-get installs the Debian packages not yet installed.
ensure_packages() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

docker_ok() { curl -sf --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1; }

# ensure_docker — Docker Engine from Debian; starts dockerd when nothing answers on the socket
# (no systemd on CI machines).
ensure_docker() {
  if [ -n "${DOCKER_HOST:-}" ]; then return 0; fi
  docker_ok && return 0
  command -v dockerd >/dev/null || ensure_packages docker.io
  log "starting dockerd (log: /var/log/berth-dockerd.log)"
  as_root sh -c 'nohup dockerd >/var/log/berth-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker_ok && return 0; sleep 0.5; done
  log "dockerd did not come up; see /var/log/berth-dockerd.log"; return 1
}

# ensure_postgres — Debian's PostgreSQL, started, with a berth_test role and database.
# Exports BERTH_TEST_DATABASE_URL.
ensure_postgres() {
  ensure_packages postgresql
  local ver
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
    pg_lsclusters -h 2>/dev/null | grep -q . || as_root pg_createcluster "$ver" main >/dev/null
    as_root pg_ctlcluster "$ver" main start
  fi
  local port
  port=$(pg_lsclusters -h | awk '$4=="online"{print $3; exit}')
  as_root su postgres -c "psql -p $port -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='berth_test'\"" | grep -q 1 ||
    as_root su postgres -c "psql -p $port -qc \"CREATE ROLE berth_test LOGIN SUPERUSER PASSWORD 'berth_test'\""
  as_root su postgres -c "psql -p $port -qtAc \"SELECT 1 FROM pg_database WHERE datname='berth_test'\"" | grep -q 1 ||
    as_root su postgres -c "createdb -p $port -O berth_test berth_test"
  export BERTH_TEST_DATABASE_URL="postgres://berth_test:berth_test@127.0.0.1:$port/berth_test"
}

# node_headers — prints the prefix of the running Node's own C headers (Debian's and NodeSource's
# packages put them in <prefix>/include/node) when they match its version; fails when there are none.
node_headers() {
  node -e '
    const { dirname } = require("node:path");
    const { readFileSync } = require("node:fs");
    // Where it was configured to live, and where it is (packages may install it elsewhere).
    for (const prefix of [process.config.variables.node_prefix, dirname(dirname(process.execPath))]) {
      let h;
      try { h = readFileSync(prefix + "/include/node/node_version.h", "utf8"); } catch { continue; }
      const v = ["MAJOR", "MINOR", "PATCH"].map((k) => h.match(new RegExp("define NODE_" + k + "_VERSION (\\d+)"))?.[1]).join(".");
      if (v === process.versions.node) { console.log(prefix); process.exit(0); }
    }
    process.exit(1);
  '
}

# ensure_native_build — lets npm build ssh2's optional native crypto (chacha20-poly1305 and AES-GCM
# in C: the SSH gateway's scp runs about 15% faster with it) from the local headers, offline,
# with Debian's compiler. Without headers, ssh2 uses its JavaScript and Node's crypto.
ensure_native_build() {
  local prefix
  prefix=$(node_headers) || return 0
  export npm_config_nodedir="$prefix"
  local need=()
  command -v make >/dev/null || need+=(make)
  command -v g++ >/dev/null || need+=(g++)
  command -v python3 >/dev/null || need+=(python3)
  [ ${#need[@]} -eq 0 ] || ensure_packages "${need[@]}"
}

# ensure_node_modules — npm ci when node_modules is missing or older than the lock file.
ensure_node_modules() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    ensure_native_build
    log "installing npm dependencies"
    npm ci --no-audit --no-fund >/dev/null
  fi
}

# ensure_build — compiles when any source is newer than the last build.
ensure_build() {
  if [ ! -f dist/.built ] || [ -n "$(find src test bench tsconfig.json package.json -newer dist/.built -print -quit 2>/dev/null)" ]; then
    log "building"
    npm run build --silent
    touch dist/.built
  fi
}
