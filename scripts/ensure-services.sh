#!/usr/bin/env bash
# Makes sure MariaDB (127.0.0.1:3306, root, empty password, database `test`)
# and Redis (127.0.0.1:6379) answer, starting them (and installing them from
# Debian's packages on a fresh machine) when they do not. Idempotent.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
	[ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds
	for _ in $(seq 1 $(($2 * 10))); do port_open "$1" && return 0; sleep 0.1; done
	return 1
}

ensure_mariadb() {
	if port_open 3306; then return 0; fi
	echo "ensure-services: MariaDB not answering on 127.0.0.1:3306; starting it" >&2
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
	if [ ! -d /var/lib/mysql/mysql ]; then
		as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
	fi
	as_root mkdir -p /run/mysqld && as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
	as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1 --port=3306
	wait_port 3306 60 || { echo "ensure-services: MariaDB did not start" >&2; exit 1; }
	# A fresh install lets root in through the unix socket only; open TCP with
	# an empty password, as the tests and `make run` expect, and make `test`.
	for _ in $(seq 1 50); do
		if as_root mariadb -uroot -e "SELECT 1" >/dev/null 2>&1; then break; fi
		sleep 0.2
	done
	as_root mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS test; ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;" >/dev/null 2>&1 || true
}

ensure_redis() {
	if port_open 6379; then return 0; fi
	echo "ensure-services: Redis not answering on 127.0.0.1:6379; starting it" >&2
	command -v redis-server >/dev/null || apt_install redis-server
	# Its working directory takes the AOF files when the bench harness turns
	# appendonly on: keep them out of the checkout.
	mkdir -p /tmp/flashsale-redis
	redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/flashsale-redis >/dev/null
	wait_port 6379 30 || { echo "ensure-services: Redis did not start" >&2; exit 1; }
}

ensure_mariadb
ensure_redis
