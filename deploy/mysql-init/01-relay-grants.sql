-- The CDC relay reads the binlog as a replica would, as the Base A user.
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'base_a'@'%';
FLUSH PRIVILEGES;
