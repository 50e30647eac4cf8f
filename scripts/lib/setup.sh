# Shared setup steps for scripts/test and scripts/demo (sourced, not run).

# setup_venv [EXTRAS]: create or reuse .venv and install this package (editable) into it.
# The install is skipped when setup.cfg, constraints.txt and the extras are unchanged.
setup_venv() {
  local extras="${1:-}"
  local spec="."
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
  fi
  local stamp=".venv/.brgan-install-$(cat setup.cfg constraints.txt pyproject.toml | sha256sum | cut -c1-16)-${extras:-base}"
  if [ ! -f "$stamp" ]; then
    echo "== installing brgan-pacs $spec (torch from constraints.txt; about a minute the first time)"
    # torch first, alone, so pip takes the exact local build and never resolves a newer one.
    .venv/bin/pip install -q -c constraints.txt torch torchvision
    .venv/bin/pip install -q -c constraints.txt -e "$spec"
    touch "$stamp"
  fi
}

# apt_install WHY PKG...: install Debian packages (sudo when not root); non-zero on failure.
apt_install() {
  local why="$1"
  shift
  echo "== apt-get install $* ($why)"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq || return 1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" \
    >/dev/null || return 1
  # Debian's orthanc package starts a service on 4242/8042; tests and the viewer run their own.
  if printf '%s\n' "$@" | grep -qx orthanc; then
    $sudo service orthanc stop >/dev/null 2>&1 || true
  fi
}

# setup_system_tools: Orthanc (+ DICOMweb plugin), dcmtk, dicom3tools, and the redis-server and
# openssl binaries (the security tests start Redis servers of their own and make certificates).
setup_system_tools() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v Orthanc >/dev/null 2>&1 || missing+=(orthanc)
  [ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
  command -v storescu >/dev/null 2>&1 || missing+=(dcmtk)
  command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "system tools for the tests" "${missing[@]}"
  fi
}

# ensure_redis: use the Redis on 127.0.0.1:6379 if it answers, else start one on loopback.
ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    return 0
  fi
  command -v redis-server >/dev/null 2>&1 || apt_install "Redis for the tests" redis-server
  echo "== starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/brgan-redis.log
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-server did not answer on 127.0.0.1:6379 (log: /tmp/brgan-redis.log)" >&2
  return 1
}
