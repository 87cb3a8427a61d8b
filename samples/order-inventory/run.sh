#!/usr/bin/env bash
# run.sh start|stop|status — build the sample and run the coordinator and the
# order, inventory and account services as separate processes on loopback,
# against this machine's MariaDB (creating the databases) and NATS JetStream
# (a stream of this run's own, deleted at stop), or stop them.
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
#   GTX_TC_REPLICAS  coordinator replicas (mysql store), on 8091, 8092, ...;
#                    the services attach to every one        [1]
#   GTX_NATS_URL     NATS with JetStream, for the saga steps  [nats://127.0.0.1:4222]
#   GTX_NATS_STREAM, GTX_NATS_SUBJECT  stream and subject prefix of the saga
#                    steps [GTX_SAMPLE_<run>, gtx.sample.<run>: new at each
#                    start, the stream deleted at stop]
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
replicas="${GTX_TC_REPLICAS:-1}"
nats_url="${GTX_NATS_URL:-nats://127.0.0.1:4222}"

# js_delete_stream stream: deletes a JetStream stream on $nats_url with the
# NATS text protocol (no client needed) and prints the server's answer.
js_delete_stream() {
	local hostport="${nats_url#nats://}" line
	hostport="${hostport%%/*}"
	exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || return 1
	printf 'CONNECT {"verbose":false}\r\nSUB _INBOX.gtxrun 1\r\nPUB $JS.API.STREAM.DELETE.%s _INBOX.gtxrun 0\r\n\r\n' "$1" >&3
	while IFS= read -r -t 5 line <&3; do
		case "$line" in
		MSG*)
			IFS= read -r -t 5 line <&3
			echo "delete stream $1: $line"
			break
			;;
		esac
	done
	exec 3<&- 3>&-
}

# nats_names sets stream and subject: the environment's, or this run's
# (kept in $dir/nats.env until stop).
nats_names() {
	if [ -f "$dir/nats.env" ]; then
		. "$dir/nats.env"
	else
		local run
		run="$(date +%s)$$"
		stream="${GTX_NATS_STREAM:-GTX_SAMPLE_$run}"
		subject="${GTX_NATS_SUBJECT:-gtx.sample.$run}"
		owned=$([ -z "${GTX_NATS_STREAM:-}" ] && echo 1 || echo 0)
		printf 'stream=%s\nsubject=%s\nowned=%s\n' "$stream" "$subject" "$owned" >"$dir/nats.env"
	fi
}

# tc_name i: the name (pid and log file) of coordinator replica i.
tc_name() {
	if [ "$1" = 0 ]; then echo tc; else echo "tc$1"; fi
}

# names: every process of this run, the coordinators last.
names() {
	local f
	echo order account inventory
	for f in "$dir"/tc*.pid; do
		[ -f "$f" ] && basename "$f" .pid
	done
	[ -f "$dir/tc.pid" ] || echo tc
}

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
	nats_names
	echo "saga steps over $nats_url, stream $stream, subjects $subject.>"
	local tcs="" i
	if [ "$store" = redis ]; then
		start_one tc "$dir/bin/gtx" tc --listen 127.0.0.1:8091 --server-id sample-tc \
			--store-driver redis --store-dsn "$redis_url" --store-prefix "${prefix}tc:"
		tcs=127.0.0.1:8091
	else
		for i in $(seq 0 $((replicas - 1))); do
			start_one "$(tc_name "$i")" "$dir/bin/gtx" tc --listen "127.0.0.1:$((8091 + i))" --server-id "sample-tc-$i" \
				--node-id -1 --store-driver mysql --store-dsn "${dsn}${prefix}tc" \
				${GTX_LOCK_STORE:+--lock-store "$GTX_LOCK_STORE" --store-prefix "${prefix}locks:"}
			tcs="${tcs:+$tcs,}127.0.0.1:$((8091 + i))"
		done
	fi
	sleep 0.5
	local common=(-tc "$tcs" -nats "$nats_url" -nats-stream "$stream" -nats-subject "$subject" -tx-timeout "$timeout" -db-driver mysql)
	start_one inventory "$dir/bin/inventory" -http 127.0.0.1:8002 -grpc 127.0.0.1:9002 "${common[@]}" \
		-db-dsn "${dsn}${prefix}inventory"
	start_one account "$dir/bin/account" -http 127.0.0.1:8003 -grpc 127.0.0.1:9003 "${common[@]}" \
		-db-dsn "${dsn}${prefix}account"
	wait_http http://127.0.0.1:8002/v1/stock/A
	wait_http http://127.0.0.1:8003/v1/accounts/u1
	start_one order "$dir/bin/order" -http 127.0.0.1:8001 -grpc 127.0.0.1:9001 "${common[@]}" \
		-inventory 127.0.0.1:9002 -account 127.0.0.1:9003 -db-dsn "${dsn}${prefix}order"
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
	for name in $(names); do
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
	if [ -f "$dir/nats.env" ]; then
		. "$dir/nats.env"
		if [ "$owned" = 1 ]; then
			js_delete_stream "$stream" || echo "could not delete the NATS stream $stream" >&2
		fi
		rm -f "$dir/nats.env"
	fi
}

status() {
	for name in $(names); do
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
