#!/usr/bin/env bash
# Makes sure the real databases the tests use are installed and answering, idempotently:
#   MariaDB    127.0.0.1:3306, user root without password, database `test`
#   PostgreSQL 127.0.0.1:5432, trust authentication, users root and postgres, database `test`
# On the development machines both already run; elsewhere they are installed from Debian's
# packages and started here.
set -euo pipefail

clients=()
command -v mysql >/dev/null || clients+=(mariadb-client)
command -v psql >/dev/null || clients+=(postgresql-client)
if [ ${#clients[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${clients[@]}"
fi

mysql_ok() { mysql -h127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1; }
pg_ok() { psql -h 127.0.0.1 -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; }

if ! mysql_ok; then
  if ! command -v mariadbd >/dev/null && ! command -v mysqld >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client
  fi
  service mariadb start || service mysql start || true
  for _ in $(seq 1 30); do mysql_ok && break; sleep 1; done
  # Debian's root uses unix_socket auth: allow the empty password over TCP, as on the dev machines.
  mysql -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;" 2>/dev/null || true
  mysql_ok || { echo "MariaDB is not answering on 127.0.0.1:3306"; exit 1; }
fi
mysql -h127.0.0.1 -uroot -e 'CREATE DATABASE IF NOT EXISTS test'

if ! pg_ok; then
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client
  fi
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "tributary-tests" "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust # tributary-tests\nlocal all all trust # tributary-tests' "$hba"
  fi
  pg_ctlcluster "$version" main start || pg_ctlcluster "$version" main reload || true
  for _ in $(seq 1 30); do pg_ok && break; sleep 1; done
  pg_ok || { echo "PostgreSQL is not answering on 127.0.0.1:5432"; exit 1; }
  psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE ROLE root SUPERUSER LOGIN' 2>/dev/null || true
fi
psql -h 127.0.0.1 -U postgres -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test'
echo "databases ready (MariaDB 127.0.0.1:3306, PostgreSQL 127.0.0.1:5432)"
