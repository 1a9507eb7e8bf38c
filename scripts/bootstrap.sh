#!/usr/bin/env bash
# Installs what vendlab needs on a fresh Debian/Ubuntu machine, then the Python environment.
#   scripts/bootstrap.sh          runtime: Java 17, the venv with requirements.txt, vendlab itself
#   scripts/bootstrap.sh --test   also the tools the tests use (docker-compose for `config -q`, chromium, and
#                                 Maven, which then resolves the local stack's jars: Kafka, Cassandra, Hadoop,
#                                 Spark's Kafka source; the first run downloads them, later runs do not)
# System packages are installed with apt-get only when missing and when running as root; otherwise
# the script stops and prints the exact command to run.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

need_apt=()
java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local v; v=$(java -version 2>&1 | head -n1 | sed -E 's/.*version "([0-9]+).*/\1/')
  [ "${v:-0}" -ge 17 ] 2>/dev/null
}
java_ok || need_apt+=(openjdk-17-jre-headless)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if [ "$want_test" = 1 ]; then
  command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need_apt[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages: ${need_apt[*]}" >&2
    echo "bootstrap: install them with:  sudo apt-get install -y ${need_apt[*]}" >&2
    exit 2
  fi
fi

stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  touch "$stamp"
fi
if [ "$want_test" = 1 ]; then
  # the real-service tests (tests/test_localstack_*.py) run the compose stacks' services from Maven's jars
  .venv/bin/python -m vendlab.localstack.maven
fi
