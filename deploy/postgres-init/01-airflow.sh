#!/usr/bin/env bash
# Airflow's metadata database beside Base B, owned by its own user (password from the environment).
# psql reads the password from its environment (\getenv, psql 15+), not from its command line (`ps`
# shows that to every user); the SQL quotes it (:'...').
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\getenv airflow_password AIRFLOW_DB_PASSWORD
CREATE USER airflow WITH PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
SQL
