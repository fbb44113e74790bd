#!/usr/bin/env bash
# deps.sh: makes sure the system packages the tests and the demo need are
# here: redis-server, the PostgreSQL server binaries (initdb, postgres) and
# promtool (Debian's prometheus package), which tests the alerting rules.
# As root it installs what is missing with apt-get; otherwise it says
# exactly what to install and fails.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
pg_ok=false
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ] && [ -x "$(pg_config --bindir)/postgres" ]; then
  pg_ok=true
elif compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  pg_ok=true
fi
$pg_ok || missing+=(postgresql)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "deps: missing ${missing[*]}: install with: sudo apt-get install -y ${missing[*]}" >&2
exit 1
