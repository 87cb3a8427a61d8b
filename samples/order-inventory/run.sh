#!/usr/bin/env bash
# run.sh start|stop|status|clean — build the sample and run the coordinator
# and the order, inventory and account services as separate processes on
# loopback, against this machine's MariaDB or PostgreSQL (creating the
# databases) and NATS JetStream (a stream of this run's own, deleted at
# stop); stop them; or stop them and drop the databases (clean).
#
# Environment (defaults in brackets):
#   GTX_RUN_DIR      binaries, logs and pid files            [/tmp/gtx-order-inventory]
#   GTX_SAMPLE_DB    the services' (and the coordinator's) database server:
#                    mysql (MariaDB/MySQL) or postgres; kept until clean [mysql]
#   GTX_MYSQL        mysql client command                     [mysql -h127.0.0.1 -P3306 -uroot]
#   GTX_MYSQL_DSN    go-sql-driver DSN prefix, no database    [root@tcp(127.0.0.1:3306)/]
#   GTX_PSQL         psql command, connected to an existing database
#                                                             [psql -h127.0.0.1 -p5432 -Upostgres -dpostgres]
#   GTX_PG_URL       PostgreSQL URL prefix, no database       [postgres://postgres@127.0.0.1:5432/]
#   GTX_PG_OPTS      appended to each PostgreSQL URL          [?sslmode=disable]
#   GTX_DB_PREFIX    database name prefix                     [gtx_sample_]
#   GTX_TC_STORE     coordinator store: sql (on GTX_SAMPLE_DB's server; mysql
#                    means the same) or redis                  [sql]
#   GTX_REDIS_URL    Redis for GTX_TC_STORE=redis             [redis://127.0.0.1:6379/0]
#   GTX_LOCK_STORE   with the sql store, keep the global row locks in this Redis
#                    (redis://host:port/db)                   [unset: in the sql store]
#   GTX_TX_TIMEOUT   global transaction timeout               [30s]
#   GTX_TC_REPLICAS  coordinator replicas (sql store), on 8091, 8092, ...;
#                    the services attach to every one        [1]
#   GTX_NATS_URL     NATS with JetStream, for the saga steps  [nats://127.0.0.1:4222]
#   GTX_NATS_STREAM, GTX_NATS_SUBJECT  stream and subject prefix of the saga
#                    steps [GTX_SAMPLE_<run>, gtx.sample.<run>: new at each
#                    start, the stream deleted at stop]
#   GTX_TC_PORT      first coordinator port; replicas take the next ones [8091]
#   GTX_HTTP_BASE    HTTP ports: order +1, inventory +2, account +3 [8000]
#   GTX_GRPC_BASE    gRPC ports: order +1, inventory +2, account +3 [9000]
# DSNs reach the processes in their environment (GTX_STORE_DSN, GTX_DB_DSN),
# never on the command line, where ps would show their passwords.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${GTX_RUN_DIR:-/tmp/gtx-order-inventory}"
mysql_cmd="${GTX_MYSQL:-mysql -h127.0.0.1 -P3306 -uroot}"
mysql_dsn="${GTX_MYSQL_DSN:-root@tcp(127.0.0.1:3306)/}"
psql_cmd="${GTX_PSQL:-psql -h127.0.0.1 -p5432 -Upostgres -dpostgres}"
pg_url="${GTX_PG_URL:-postgres://postgres@127.0.0.1:5432/}"
pg_opts="${GTX_PG_OPTS:-?sslmode=disable}"
prefix="${GTX_DB_PREFIX:-gtx_sample_}"
store="${GTX_TC_STORE:-sql}"
redis_url="${GTX_REDIS_URL:-redis://127.0.0.1:6379/0}"
timeout="${GTX_TX_TIMEOUT:-30s}"
replicas="${GTX_TC_REPLICAS:-1}"
nats_url="${GTX_NATS_URL:-nats://127.0.0.1:4222}"
tc_port="${GTX_TC_PORT:-8091}"
http_base="${GTX_HTTP_BASE:-8000}"
grpc_base="${GTX_GRPC_BASE:-9000}"
order_http="127.0.0.1:$((http_base + 1))" inventory_http="127.0.0.1:$((http_base + 2))" account_http="127.0.0.1:$((http_base + 3))"
order_grpc="127.0.0.1:$((grpc_base + 1))" inventory_grpc="127.0.0.1:$((grpc_base + 2))" account_grpc="127.0.0.1:$((grpc_base + 3))"

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

# db_server sets db (mysql or postgres): the one this run started on (kept
# in $dir/db.env until clean), else GTX_SAMPLE_DB's.
db_server() {
	if [ -f "$dir/db.env" ]; then
		. "$dir/db.env"
	else
		db="${GTX_SAMPLE_DB:-mysql}"
	fi
	case "$db" in
	mysql | postgres) ;;
	*)
		echo "GTX_SAMPLE_DB=$db: use mysql or postgres" >&2
		exit 2
		;;
	esac
}

# db_dsn name: the DSN of the sample's database name on $db.
db_dsn() {
	if [ "$db" = postgres ]; then
		echo "${pg_url}${prefix}$1${pg_opts}"
	else
		echo "${mysql_dsn}${prefix}$1"
	fi
}

# create_dbs: creates the coordinator's and the services' databases unless
# they exist.
create_dbs() {
	local name
	for name in tc order inventory account; do
		if [ "$db" = postgres ]; then
			if [ -z "$($psql_cmd -Atc "SELECT 1 FROM pg_database WHERE datname = '${prefix}${name}'")" ]; then
				$psql_cmd -qc "CREATE DATABASE \"${prefix}${name}\""
			fi
		else
			$mysql_cmd -e "CREATE DATABASE IF NOT EXISTS \`${prefix}${name}\`"
		fi
	done
}

# drop_dbs: drops them.
drop_dbs() {
	local name
	for name in tc order inventory account; do
		if [ "$db" = postgres ]; then
			$psql_cmd -qc "DROP DATABASE IF EXISTS \"${prefix}${name}\" WITH (FORCE)"
		else
			$mysql_cmd -e "DROP DATABASE IF EXISTS \`${prefix}${name}\`"
		fi
		echo "dropped database ${prefix}${name} ($db)"
	done
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
	db_server
	echo "db=$db" >"$dir/db.env"
	create_dbs
	echo "databases ${prefix}{tc,order,inventory,account} on $db"
	nats_names
	echo "saga steps over $nats_url, stream $stream, subjects $subject.>"
	local tcs="" i
	if [ "$store" = redis ]; then
		GTX_STORE_DSN="$redis_url" start_one tc "$dir/bin/gtx" tc --listen "127.0.0.1:$tc_port" --server-id sample-tc \
			--store-driver redis --store-prefix "${prefix}tc:"
		tcs="127.0.0.1:$tc_port"
	else
		for i in $(seq 0 $((replicas - 1))); do
			GTX_STORE_DSN="$(db_dsn tc)" start_one "$(tc_name "$i")" "$dir/bin/gtx" tc --listen "127.0.0.1:$((tc_port + i))" \
				--server-id "sample-tc-$i" --node-id -1 --store-driver "$db" \
				${GTX_LOCK_STORE:+--lock-store "$GTX_LOCK_STORE" --store-prefix "${prefix}locks:"}
			tcs="${tcs:+$tcs,}127.0.0.1:$((tc_port + i))"
		done
	fi
	sleep 0.5
	local common=(-tc "$tcs" -nats "$nats_url" -nats-stream "$stream" -nats-subject "$subject" -tx-timeout "$timeout" -db-driver "$db")
	GTX_DB_DSN="$(db_dsn inventory)" start_one inventory "$dir/bin/inventory" -http "$inventory_http" -grpc "$inventory_grpc" "${common[@]}"
	GTX_DB_DSN="$(db_dsn account)" start_one account "$dir/bin/account" -http "$account_http" -grpc "$account_grpc" "${common[@]}"
	wait_http "http://$inventory_http/v1/stock/A"
	wait_http "http://$account_http/v1/accounts/u1"
	GTX_DB_DSN="$(db_dsn order)" start_one order "$dir/bin/order" -http "$order_http" -grpc "$order_grpc" "${common[@]}" \
		-inventory "$inventory_grpc" -account "$account_grpc"
	wait_http "http://$order_http/v1/orders?user=u1"
	cat <<MSG
all running. Try:
  curl -s -XPOST http://$order_http/v1/orders -d '{"user":"u1","sku":"A","quantity":2,"mode":"tcc"}'
  curl -s http://$inventory_http/v1/stock/A
  curl -s http://$account_http/v1/accounts/u1
  $dir/bin/gtx bench order --order http://$order_http --inventory http://$inventory_http --account http://$account_http -d 10s
  $dir/bin/gtx tx list --tc 127.0.0.1:$tc_port
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

clean() {
	stop
	db_server
	drop_dbs
	rm -f "$dir/db.env"
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
clean) clean ;;
*)
	echo "usage: $0 start|stop|status|clean" >&2
	exit 2
	;;
esac
