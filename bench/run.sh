#!/bin/sh
# run.sh: measure servers under load with bench/loadgen. Run it from the
# repository's root: make bench.
#
# For each number of clients in CLIENTS and each server in SERVERS it starts
# the server on a free loopback port, runs the load generator against it and
# stops the server; then it prints the runs side by side. With two cores or
# more, the server runs on core 0 and the generator on core 1, so that they
# do not take time from each other.
#
# SERVERS names binaries in bin/, or "redis2": two instances of
# gin-sse-progress sharing their clients through a redis-server of the
# script's own. The generator opens half the streams on each instance and
# starts every run through the other one; the instances and Redis all run on
# core 0, and their memory and CPU time are added up.
#
# Settings, from the environment:
#   CLIENTS  streams (each with one run) per measurement  [1000 10000]
#   SERVERS  what to measure                              [gin-sse-progress redis2 baseline]
#   RATE     runs started per second                      [1000]
#   TICK     the servers' tick                            [1s]
#   OUT      the JSON lines file of the results           [bin/bench.jsonl]
#   LOGS     a directory to keep the servers' logs in, as
#            N-NAME.log for the Nth measurement           [none: dropped]
set -eu

CLIENTS=${CLIENTS:-1000 10000}
SERVERS=${SERVERS:-gin-sse-progress redis2 baseline}
RATE=${RATE:-1000}
TICK=${TICK:-1s}
OUT=${OUT:-bin/bench.jsonl}
GO=${GO:-go}
LOGS=${LOGS:-}

mkdir -p bin
$GO build -o bin/gin-sse-progress .
(cd bench && $GO build -o ../bin/baseline ./baseline && $GO build -o ../bin/loadgen ./loadgen)
case " $SERVERS " in
*" redis2 "*) sh scripts/apt-install.sh redis-server ;;
esac

server_cpu= load_cpu=
if command -v taskset >/dev/null 2>&1 && [ "$(nproc --all)" -ge 2 ]; then
	server_cpu="taskset -c 0" load_cpu="taskset -c 1"
	echo "server on core 0, load generator on core 1"
fi

: >"$OUT"
tmp=$(mktemp -d)
pids=
stop() {
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	pids=
}
trap 'stop; rm -rf "$tmp"' EXIT

# serve NAME BINARY ARGS... starts a server and sets addr to the address its
# log says it listens on.
serve() {
	name=$1 bin=$2
	shift 2
	$server_cpu "bin/$bin" -addr 127.0.0.1:0 -tick "$TICK" "$@" 2>"$tmp/$name.log" &
	pids="$pids $!"
	addr=
	for _ in $(seq 100); do
		addr=$(sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' "$tmp/$name.log")
		[ -n "$addr" ] && return
		sleep 0.1
	done
	echo "bin/$bin did not start:" >&2
	cat "$tmp/$name.log" >&2
	exit 1
}

# redis starts a redis-server on a free port, keeping nothing on disk, and
# sets redis_url.
redis() {
	for port in $(seq 16379 16479); do
		$server_cpu redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
			--dir "$tmp" --maxclients 1000 >"$tmp/redis.log" 2>&1 &
		p=$!
		for _ in $(seq 50); do
			if grep -q "Ready to accept connections" "$tmp/redis.log"; then
				pids="$pids $p"
				redis_url="redis://127.0.0.1:$port/0"
				return
			fi
			kill -0 "$p" 2>/dev/null || break # the port was taken
			sleep 0.1
		done
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	echo "redis-server did not start:" >&2
	cat "$tmp/redis.log" >&2
	exit 1
}

run=0
for c in $CLIENTS; do
	for server in $SERVERS; do
		case $server in
		redis2)
			redis
			serve a gin-sse-progress -redis "$redis_url" -max-streams $((c + 100))
			a=$addr
			serve b gin-sse-progress -redis "$redis_url" -max-streams $((c + 100))
			urls="http://$a,http://$addr" label="two on Redis"
			;;
		*)
			serve "$server" "$server" -max-streams $((c + 100))
			urls="http://$addr" label=$server
			;;
		esac
		$load_cpu bin/loadgen -url "$urls" -c "$c" -rate "$RATE" -tick "$TICK" \
			-pid "$(echo $pids | tr ' ' ',')" -label "$label" -out "$OUT" >/dev/null
		stop
		run=$((run + 1))
		if [ -n "$LOGS" ]; then
			mkdir -p "$LOGS"
			for f in "$tmp"/*.log; do mv "$f" "$LOGS/$run-$(basename "$f")"; done
		fi
	done
done

echo
bin/loadgen -report "$OUT"
