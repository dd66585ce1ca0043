#!/bin/bash
# First start: create the data directory, the root password, MYSQL_DATABASE and MYSQL_USER, run the
# init scripts (*.sql as root, *.sh with the environment, as upstream runs them); then MariaDB in the
# foreground with the service's command-line options.
set -euo pipefail
DATA=/var/lib/mysql
chown -R mysql "$DATA"
if [ ! -d "$DATA/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$DATA" --auth-root-authentication-method=normal >/dev/null
  # On the default socket, without networking, as upstream's: init scripts call plain `mysql`.
  mariadbd --user=mysql --datadir="$DATA" --skip-networking &
  pid=$!
  for _ in $(seq 60); do mariadb-admin ping --silent && break; sleep 0.5; done
  sql() { mariadb -uroot "$@"; }
  sql <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
CREATE USER 'root'@'%' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE}\`;
CREATE USER '${MYSQL_USER}'@'%' IDENTIFIED BY '${MYSQL_PASSWORD}';
GRANT ALL ON \`${MYSQL_DATABASE}\`.* TO '${MYSQL_USER}'@'%';
SQL
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sql) sql -p"${MYSQL_ROOT_PASSWORD}" < "$script" ;;
      *.sh) if [ -x "$script" ]; then "$script"; else . "$script"; fi ;;  # with the service's environment
    esac
  done
  kill "$pid"; wait "$pid" || true
fi
exec mariadbd --user=mysql --datadir="$DATA" --bind-address=0.0.0.0 "$@"
