#!/usr/bin/env bash
# Makes sure MariaDB (127.0.0.1:3306, root, empty password, database `test`)
# and Redis (127.0.0.1:6379) answer, starting them (and installing them from
# Debian's packages on a fresh machine) when they do not; and that Go can use
# cgo, which `go test -race` needs (a fresh machine with only Go has no C
# compiler: gcc is installed then). Idempotent, and quick when all is there.
#
# Usage: ensure-services.sh [mariadb] [redis] [cc]   (no argument: all three)
set -euo pipefail

die() { echo "ensure-services: $*" >&2; exit 1; }

# Starting or installing a service needs root: the script's own user, or sudo.
# Checked before the first privileged step, so the reason is not lost in a
# command whose output is discarded.
require_root() {
	[ "$(id -u)" = 0 ] || command -v sudo >/dev/null ||
		die "need root to $1: run as root or install sudo"
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
	require_root "install $*"
	[ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds
	for _ in $(seq 1 $(($2 * 10))); do port_open "$1" && return 0; sleep 0.1; done
	return 1
}

# show_log prints the last lines of a daemon's log file, if it has one.
show_log() { # file
	if [ -s "$1" ]; then
		echo "ensure-services: last lines of $1:" >&2
		if [ -r "$1" ]; then tail -n 30 "$1" >&2; else as_root tail -n 30 "$1" >&2; fi || true
	fi
}

ensure_mariadb() {
	if port_open 3306; then
		ensure_test_db
		return 0
	fi
	echo "ensure-services: MariaDB not answering on 127.0.0.1:3306; starting it" >&2
	require_root "start MariaDB"
	# mariadbd's (and mariadb-install-db's) own output, kept for when it fails.
	local mariadb_out
	mariadb_out=$(mktemp /tmp/flashsale-mariadb.XXXXXX)
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
	if [ ! -d /var/lib/mysql/mysql ]; then
		as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$mariadb_out" 2>&1 ||
			{ show_log "$mariadb_out"; die "mariadb-install-db failed"; }
	fi
	as_root mkdir -p /run/mysqld && as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
	as_root start-stop-daemon --start --oknodo --background --output "$mariadb_out" \
		--exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1 --port=3306
	if ! wait_port 3306 60; then
		echo "ensure-services: MariaDB did not start" >&2
		show_log "$mariadb_out"
		# A configured log-error file takes what mariadbd would print.
		local errlog
		errlog=$(my_print_defaults --mysqld 2>/dev/null | sed -n 's/^--log[-_]error=//p' | tail -n 1)
		[ -z "$errlog" ] || show_log "$errlog"
		exit 1
	fi
	# A fresh install lets root in through the unix socket only; open TCP with
	# an empty password, as the tests and `make run` expect, and make `test`.
	for _ in $(seq 1 50); do
		if as_root mariadb -uroot -e "SELECT 1" >/dev/null 2>&1; then break; fi
		sleep 0.2
	done
	local out
	if ! out=$(as_root mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS test; ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;" 2>&1); then
		echo "ensure-services: warning: could not let root in over TCP with an empty password: $out" >&2
		echo "ensure-services: warning: the tests and \`make run\` will get \"Access denied\" for root@127.0.0.1" >&2
	fi
}

# ensure_test_db creates the database `test` on a MariaDB that already
# answers, over TCP as root with an empty password (what the tests use).
ensure_test_db() {
	local client out
	client=$(command -v mariadb || command -v mysql || true)
	if [ -z "$client" ]; then
		echo "ensure-services: note: no mariadb client here to check that database \`test\` exists" >&2
		return 0
	fi
	if ! out=$("$client" -h127.0.0.1 -P3306 -uroot --connect-timeout=5 -e "CREATE DATABASE IF NOT EXISTS test" 2>&1); then
		echo "ensure-services: warning: MariaDB answers but could not create database \`test\` as root over TCP: $out" >&2
		echo "ensure-services: warning: the tests and \`make run\` need root@127.0.0.1 with an empty password" >&2
	fi
}

redis_dir=/tmp/flashsale-redis

ensure_redis() {
	if port_open 6379; then return 0; fi
	echo "ensure-services: Redis not answering on 127.0.0.1:6379; starting it" >&2
	command -v redis-server >/dev/null || apt_install redis-server
	# Its working directory takes the AOF files when the bench harness turns
	# appendonly on: keep them out of the checkout.
	mkdir -p "$redis_dir"
	redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
		--dir "$redis_dir" --logfile "$redis_dir/redis.log" >/dev/null ||
		{ show_log "$redis_dir/redis.log"; die "redis-server failed"; }
	if ! wait_port 6379 30; then
		echo "ensure-services: Redis did not start" >&2
		show_log "$redis_dir/redis.log"
		exit 1
	fi
}

# ensure_cc makes sure `go test -race` can build: the race detector needs cgo,
# and Go turns cgo off when it finds no C compiler.
ensure_cc() {
	[ "$(go env CGO_ENABLED 2>/dev/null)" = 1 ] && return 0
	if [ -n "${CGO_ENABLED:-}" ] && [ "$CGO_ENABLED" != 1 ]; then
		die "CGO_ENABLED=$CGO_ENABLED is set, but \`go test -race\` needs cgo: unset it"
	fi
	echo "ensure-services: no C compiler for cgo (go test -race needs one); installing gcc" >&2
	apt_install gcc libc6-dev
	[ "$(go env CGO_ENABLED 2>/dev/null)" = 1 ] || die "gcc installed, but go env CGO_ENABLED is still not 1"
}

[ $# -gt 0 ] || set -- mariadb redis cc
for svc in "$@"; do
	case $svc in
	mariadb) ensure_mariadb ;;
	redis) ensure_redis ;;
	cc) ensure_cc ;;
	*) die "unknown service \"$svc\" (want mariadb, redis or cc)" ;;
	esac
done
