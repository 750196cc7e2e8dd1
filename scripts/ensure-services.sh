#!/usr/bin/env bash
# Start the local PostgreSQL and MariaDB the tests use, when they are not answering,
# and install Debian's Chromium for the browser tests when it is missing.
set -euo pipefail

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "$name did not come up" >&2; return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "Starting PostgreSQL..."
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432 -q
fi

# Password rotation is tested for real: members of the role `etl_password_auth` must log in with
# their password over TCP (everyone else keeps the machine's trust rule). Idempotent.
PG_HBA="$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | sort -V | tail -1 || true)"
if [ -n "$PG_HBA" ] && ! grep -q "+etl_password_auth" "$PG_HBA"; then
  echo "Enabling password authentication for PostgreSQL role group etl_password_auth..."
  { echo "host all +etl_password_auth 127.0.0.1/32 scram-sha-256"
    echo "host all +etl_password_auth ::1/128 scram-sha-256"
    cat "$PG_HBA"; } > "$PG_HBA.new" && mv "$PG_HBA.new" "$PG_HBA"
  chown postgres:postgres "$PG_HBA" 2>/dev/null || true
fi
psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'etl_password_auth'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE ROLE etl_password_auth NOLOGIN"
psql -h 127.0.0.1 -U postgres -d postgres -qtAc "SELECT pg_reload_conf()" >/dev/null

if ! mariadb-admin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; then
  echo "Starting MariaDB..."
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB mariadb-admin -h 127.0.0.1 -P 3306 -u root ping
fi

if [ ! -x /usr/bin/chromium ]; then
  echo "Installing Chromium (Debian package) for the browser tests..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
