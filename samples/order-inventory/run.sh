#!/usr/bin/env bash
# run.sh start|stop|status — build the sample and run the coordinator and the
# order, inventory and account services as separate processes on loopback,
# against this machine's MariaDB (creating the databases), or stop them.
#
# Environment (defaults in brackets):
#   GTX_RUN_DIR      binaries, logs and pid files            [/tmp/gtx-order-inventory]
#   GTX_MYSQL        mysql client command                     [mysql -h127.0.0.1 -P3306 -uroot]
#   GTX_MYSQL_DSN    go-sql-driver DSN prefix, no database    [root@tcp(127.0.0.1:3306)/]
#   GTX_DB_PREFIX    database name prefix                     [gtx_sample_]
#   GTX_TC_STORE     coordinator store: mysql or redis        [mysql]
#   GTX_REDIS_URL    Redis for GTX_TC_STORE=redis             [redis://127.0.0.1:6379/0]
#   GTX_LOCK_STORE   with the mysql store, keep the global row locks in this Redis
#                    (redis://host:port/db)                   [unset: in MariaDB]
#   GTX_TX_TIMEOUT   global transaction timeout               [30s]
# Ports: coordinator 8091; HTTP order 8001, inventory 8002, account 8003;
# gRPC order 9001, inventory 9002, account 9003.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${GTX_RUN_DIR:-/tmp/gtx-order-inventory}"
mysql_cmd="${GTX_MYSQL:-mysql -h127.0.0.1 -P3306 -uroot}"
dsn="${GTX_MYSQL_DSN:-root@tcp(127.0.0.1:3306)/}"
prefix="${GTX_DB_PREFIX:-gtx_sample_}"
store="${GTX_TC_STORE:-mysql}"
redis_url="${GTX_REDIS_URL:-redis://127.0.0.1:6379/0}"
timeout="${GTX_TX_TIMEOUT:-30s}"

start_one() { # name, command...
	local name="$1"
	shift
	if [ -f "$dir/$name.pid" ] && kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
		echo "$name is running already (pid $(cat "$dir/$name.pid"))"
		return
	fi
	nohup "$@" >>"$dir/$name.log" 2>&1 &
	echo $! >"$dir/$name.pid"
	echo "started $name (pid $!, log $dir/$name.log)"
}

wait_http() { # url
	for _ in $(seq 1 100); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "no answer from $1; see the logs in $dir" >&2
	return 1
}

start() {
	mkdir -p "$dir/bin"
	echo "building into $dir/bin"
	(cd "$root" && go build -o "$dir/bin/" ./cmd/gtx ./samples/order-inventory/cmd/...)
	for db in tc order inventory account; do
		$mysql_cmd -e "CREATE DATABASE IF NOT EXISTS \`${prefix}${db}\`"
	done
	if [ "$store" = redis ]; then
		start_one tc "$dir/bin/gtx" tc --listen 127.0.0.1:8091 --server-id sample-tc \
			--store-driver redis --store-dsn "$redis_url" --store-prefix "${prefix}tc:"
	else
		start_one tc "$dir/bin/gtx" tc --listen 127.0.0.1:8091 --server-id sample-tc \
			--store-driver mysql --store-dsn "${dsn}${prefix}tc" \
			${GTX_LOCK_STORE:+--lock-store "$GTX_LOCK_STORE" --store-prefix "${prefix}locks:"}
	fi
	sleep 0.5
	start_one inventory "$dir/bin/inventory" -http 127.0.0.1:8002 -grpc 127.0.0.1:9002 -tc 127.0.0.1:8091 \
		-db-driver mysql -db-dsn "${dsn}${prefix}inventory" -tx-timeout "$timeout"
	start_one account "$dir/bin/account" -http 127.0.0.1:8003 -grpc 127.0.0.1:9003 -tc 127.0.0.1:8091 \
		-db-driver mysql -db-dsn "${dsn}${prefix}account" -tx-timeout "$timeout"
	wait_http http://127.0.0.1:8002/v1/stock/A
	wait_http http://127.0.0.1:8003/v1/accounts/u1
	start_one order "$dir/bin/order" -http 127.0.0.1:8001 -grpc 127.0.0.1:9001 -tc 127.0.0.1:8091 \
		-inventory 127.0.0.1:9002 -account 127.0.0.1:9003 \
		-db-driver mysql -db-dsn "${dsn}${prefix}order" -tx-timeout "$timeout"
	wait_http "http://127.0.0.1:8001/v1/orders?user=u1"
	cat <<MSG
all running. Try:
  curl -s -XPOST http://127.0.0.1:8001/v1/orders -d '{"user":"u1","sku":"A","quantity":2,"mode":"tcc"}'
  curl -s http://127.0.0.1:8002/v1/stock/A
  curl -s http://127.0.0.1:8003/v1/accounts/u1
  $dir/bin/gtx bench order --order http://127.0.0.1:8001 --inventory http://127.0.0.1:8002 --account http://127.0.0.1:8003 -d 10s
  $dir/bin/gtx tx list --tc 127.0.0.1:8091
MSG
}

stop() {
	for name in order account inventory tc; do
		local f="$dir/$name.pid"
		[ -f "$f" ] || continue
		local pid
		pid="$(cat "$f")"
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid"
			for _ in $(seq 1 100); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
			echo "stopped $name (pid $pid)"
		fi
		rm -f "$f"
	done
}

status() {
	for name in tc inventory account order; do
		local f="$dir/$name.pid"
		if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
			echo "$name running (pid $(cat "$f"))"
		else
			echo "$name stopped"
		fi
	done
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
