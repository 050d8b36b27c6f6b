#!/bin/sh
# bench.sh: measure servers under load with cmd/loadgen.
#
# For each number of clients in CLIENTS and each server in SERVERS it starts
# the server on a free loopback port, runs the load generator against it and
# stops the server; then it prints the runs side by side. With two cores or
# more, the server runs on core 0 and the generator on core 1, so that they
# do not take time from each other.
#
# Settings, from the environment:
#   CLIENTS  streams (each with one run) per measurement  [1000 10000]
#   SERVERS  binaries in bin/ to measure                  [gin-sse-progress baseline]
#   RATE     runs started per second                      [1000]
#   TICK     the servers' tick                            [1s]
#   OUT      the JSON lines file of the results           [bin/bench.jsonl]
set -eu

CLIENTS=${CLIENTS:-1000 10000}
SERVERS=${SERVERS:-gin-sse-progress baseline}
RATE=${RATE:-1000}
TICK=${TICK:-1s}
OUT=${OUT:-bin/bench.jsonl}
GO=${GO:-go}

mkdir -p bin
$GO build -o bin/gin-sse-progress .
$GO build -o bin/baseline ./cmd/baseline
$GO build -o bin/loadgen ./cmd/loadgen

server_cpu= load_cpu=
if command -v taskset >/dev/null 2>&1 && [ "$(nproc --all)" -ge 2 ]; then
	server_cpu="taskset -c 0" load_cpu="taskset -c 1"
	echo "server on core 0, load generator on core 1"
fi

: >"$OUT"
log=$(mktemp)
pid=
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -f "$log"' EXIT

for c in $CLIENTS; do
	for server in $SERVERS; do
		$server_cpu "bin/$server" -addr 127.0.0.1:0 -tick "$TICK" -max-clients $((c + 100)) 2>"$log" &
		pid=$!
		addr=
		for _ in $(seq 100); do
			addr=$(sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' "$log")
			[ -n "$addr" ] && break
			sleep 0.1
		done
		if [ -z "$addr" ]; then
			echo "bin/$server did not start:" >&2
			cat "$log" >&2
			exit 1
		fi
		$load_cpu bin/loadgen -url "http://$addr" -c "$c" -rate "$RATE" -tick "$TICK" \
			-pid "$pid" -label "$server" -out "$OUT" >/dev/null
		kill -TERM "$pid"
		wait "$pid" || true
		pid=
	done
done

echo
bin/loadgen -report "$OUT"
