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

# check_node [FLOOR [WHAT]] — stops with a plain message unless this Node.js is at least FLOOR
# (default: the `>=` of package.json's engines.node, the floor the README states) for WHAT (default
# Berth). Reads no npm package: it runs before they are installed.
check_node() {
  if ! command -v node >/dev/null; then
    log "Berth needs Node.js 20 or newer, and there is no node here: install it (Debian 13 ships 20.19;"
    log "NodeSource's packages for older releases) and run this again"
    exit 1
  fi
  node -e '
    const floor = process.argv[1] || (/>=\s*([\d.]+)/.exec(require("./package.json").engines?.node ?? "") ?? [])[1] || "0";
    const [a, b] = [floor, process.versions.node].map((v) => v.split(".").map(Number));
    for (let i = 0; i < 3; i++) {
      if ((b[i] ?? 0) > (a[i] ?? 0)) process.exit(0);
      if ((b[i] ?? 0) < (a[i] ?? 0)) {
        console.error(`[berth setup] ${process.argv[2] || "Berth"} needs Node.js ${floor} or newer; ${process.execPath} is ${process.version}.`);
        console.error("[berth setup] Install a newer one (Debian 13 ships 20.19; NodeSource packages for older releases) and run this again.");
        process.exit(1);
      }
    }
  ' "${1:-}" "${2:-}" || exit 1
}

# install_key — what node_modules was installed from: the lock file's hash, and the Node ABI,
# platform and architecture the native modules (better-sqlite3, ssh2's crypto) were built for.
install_key() {
  node -e '
    const hash = require("node:crypto").createHash("sha256").update(require("node:fs").readFileSync("package-lock.json")).digest("hex");
    console.log(`${hash} node-abi-${process.versions.modules} ${process.platform}-${process.arch}`);
  '
}

# native_modules_load — whether better-sqlite3's compiled module loads in this Node.
native_modules_load() {
  node -e 'new (require("better-sqlite3"))(":memory:").close()' >/dev/null 2>&1
}

# ensure_node_modules — `npm ci` unless node_modules was installed, completely, from this
# package-lock.json for this Node: node_modules/.berth-install holds install_key, written only
# after an install succeeded, so an interrupted install is redone and a finished one never (file
# times alone change with checkouts and copies). A node_modules installed by hand (no stamp) is
# kept when it is newer than the lock file and its native module loads.
ensure_node_modules() {
  local want
  want=$(install_key)
  [ "$(cat node_modules/.berth-install 2>/dev/null)" = "$want" ] && return 0
  if [ ! -f node_modules/.berth-install ] && [ -f node_modules/.package-lock.json ] &&
    [ ! package-lock.json -nt node_modules/.package-lock.json ] && native_modules_load; then
    printf '%s\n' "$want" >node_modules/.berth-install
    return 0
  fi
  ensure_native_build
  npm_ci_with_progress
  printf '%s\n' "$want" >node_modules/.berth-install
}

# npm_ci_with_progress — `npm ci`, its output in a log file, with a line on stderr when it moves
# on to building a package and every 20 s between: compiling SQLite for better-sqlite3 (no
# prebuilt binary can be downloaded without GitHub) takes minutes on 2 cores, in silence otherwise.
npm_ci_with_progress() {
  local out start pid phase shown="" last=0 code=0
  out=$(mktemp "${TMPDIR:-/tmp}/berth-npm-ci.XXXXXX")
  log "installing npm dependencies (npm ci; log: $out): downloading packages, then building native"
  log "modules with node-gyp (better-sqlite3's SQLite, ssh2's crypto): a few minutes on 2 cores"
  start=$SECONDS
  npm ci --no-audit --no-fund --foreground-scripts >"$out" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    # npm prints `> pkg@version install` as each package's install script starts.
    phase=$(sed -n 's/^> \([^ ]*\) \(preinstall\|install\|postinstall\)$/\1/p' "$out" | tail -n 1)
    phase=${phase:+building ${phase}}
    phase=${phase:-downloading and unpacking packages}
    if [ "$phase" != "$shown" ] || [ $((SECONDS - last)) -ge 20 ]; then
      log "npm ci: ${phase}... ($((SECONDS - start)) s)"
      shown=$phase
      last=$SECONDS
    fi
  done
  wait "$pid" || code=$?
  if [ "$code" -ne 0 ]; then
    tail -n 40 "$out" >&2
    log "npm ci failed (exit $code); the whole output is in $out"
    return "$code"
  fi
  grep -E '^npm (warn|WARN)' "$out" >&2 || true
  log "npm dependencies installed in $((SECONDS - start)) s"
  rm -f "$out"
}

# ensure_build — compiles when any source is newer than the last build. The stamp takes the time the
# build started, so a file changed while tsc ran is compiled the next time.
ensure_build() {
  if [ ! -f dist/.built ] || [ -n "$(find src test bench scripts/check-deps.mjs tsconfig.json package.json -newer dist/.built -print -quit 2>/dev/null)" ]; then
    log "building"
    mkdir -p dist
    local stamp
    stamp=$(mktemp dist/.building.XXXXXX)
    npm run build --silent || { rm -f "$stamp"; return 1; }
    mv -f "$stamp" dist/.built
  fi
}

# ensure_web_build — builds the web console (web/ → dist/web, served by `berth server` at /) when a
# file under web/ (or the lock file: a new Vite or React) is newer than the last build; the stamp
# takes the time the build started, as ensure_build's does.
ensure_web_build() {
  if [ ! -f dist/web/.built ] || [ ! -f dist/web/index.html ] ||
    [ -n "$(find web package-lock.json -newer dist/web/.built -print -quit 2>/dev/null)" ]; then
    # Vite needs 20.19; on an older Node the server runs, and says at / that the console is not built.
    if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
      log "the web console needs Node.js 20.19 or newer to build (Vite); not built, the server runs without it"
      return 0
    fi
    log "building the web console"
    mkdir -p dist
    local stamp
    stamp=$(mktemp dist/.building-web.XXXXXX)
    npm run build:web --silent || { rm -f "$stamp"; return 1; }
    mv -f "$stamp" dist/web/.built
  fi
}

# ensure_chromium — Debian's Chromium, which the console's browser tests and bench drive with
# playwright-core (no browser download). Fails when it cannot be installed: those tests must not be skipped.
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  ensure_packages chromium
  [ -x /usr/bin/chromium ] || { log "chromium did not install (/usr/bin/chromium is missing)"; return 1; }
}
