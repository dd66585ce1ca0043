#!/bin/bash
# The platform's accounts on Base A, each with only what it needs, as Base A's owners would grant them.
# base_a (MYSQL_USER) stands for the owning team's account: `base-a init` and the demo write with it.
# - base_a_sync (Airflow's connection base_a): reads the tables; may purge the delete log it reads
#   (a table-level grant on a table `base-a init` creates later needs CREATE beside DELETE).
# - base_a_relay (the CDC relay): reads the binlog as a replica would, and the tables' definitions.
# Passwords by environment (MYSQL_PWD) and on stdin, never on a command line: `ps` shows those to every user.
set -euo pipefail
MYSQL_PWD=${MYSQL_ROOT_PASSWORD} mysql -uroot <<SQL
CREATE USER 'base_a_sync'@'%' IDENTIFIED BY '${BASE_A_SYNC_PASSWORD}';
GRANT SELECT ON \`${MYSQL_DATABASE}\`.* TO 'base_a_sync'@'%';
GRANT CREATE, DELETE ON \`${MYSQL_DATABASE}\`.delete_log TO 'base_a_sync'@'%';
CREATE USER 'base_a_relay'@'%' IDENTIFIED BY '${BASE_A_RELAY_PASSWORD}';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'base_a_relay'@'%';
GRANT SELECT ON \`${MYSQL_DATABASE}\`.* TO 'base_a_relay'@'%';
SQL
