#!/bin/bash
# First start: create the data directory, the root password, MYSQL_DATABASE and MYSQL_USER, run the
# init scripts; then MariaDB in the foreground with the service's command-line options.
set -euo pipefail
DATA=/var/lib/mysql
chown -R mysql "$DATA"
if [ ! -d "$DATA/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$DATA" --auth-root-authentication-method=normal >/dev/null
  mariadbd --user=mysql --datadir="$DATA" --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  for _ in $(seq 60); do mariadb-admin --socket=/run/mysqld/init.sock ping --silent && break; sleep 0.5; done
  sql() { mariadb --socket=/run/mysqld/init.sock -uroot "$@"; }
  sql <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
CREATE USER 'root'@'%' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE}\`;
CREATE USER '${MYSQL_USER}'@'%' IDENTIFIED BY '${MYSQL_PASSWORD}';
GRANT ALL ON \`${MYSQL_DATABASE}\`.* TO '${MYSQL_USER}'@'%';
SQL
  for script in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$script" ] && sql -p"${MYSQL_ROOT_PASSWORD}" < "$script"
  done
  kill "$pid"; wait "$pid" || true
fi
exec mariadbd --user=mysql --datadir="$DATA" --bind-address=0.0.0.0 "$@"
