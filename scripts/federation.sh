#!/usr/bin/env bash
# `make federation`: three federated homeservers as local processes on
# loopback, for trying federation without Docker (docker-compose.federation.yml
# is the same with containers).
#
# Builds the web client (make web) and the homeserver (bin/homeserver), then
# starts
#
#   hs1  SERVER_NAME=localhost:8081  http://localhost:8081  federation udp 127.0.0.1:9081  gossip 127.0.0.1:9181
#   hs2  SERVER_NAME=localhost:8082  http://localhost:8082  federation udp 127.0.0.1:9082  gossip 127.0.0.1:9182
#   hs3  SERVER_NAME=localhost:8083  http://localhost:8083  federation udp 127.0.0.1:9083  gossip 127.0.0.1:9183
#
# each with its data in data/federation/hsN (development secrets and the
# server identity are generated there on first start; delete the directory to
# start over) and no metrics listener. hs1 and hs2 are each other's static
# peers; hs3 has none and is in no one's list: the servers find it, and it
# finds them, through gossip (encrypted with a key made for this run, every
# server joining through hs1's gossip address). No keys are configured: each
# pins the others' on first contact, with a warning naming the fingerprint.
# Every log line is prefixed with its server's name. .env is not read: the
# three servers are configured here alone; other variables set in your
# environment apply to all three (e.g. FEDERATION_DELIVERY_TIMEOUT=2m).
#
# Ctrl-C (or SIGTERM) stops all three; if one exits, the others are stopped
# and the script fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { echo "federation: $*" >&2; }
fail() { say "$*"; exit 1; }

GO=${GO:-go}
command -v "$GO" >/dev/null || fail "Go is not installed (need Go 1.26)"

names=(hs1 hs2 hs3)
http_ports=(8081 8082 8083)
fed_ports=(9081 9082 9083)
gossip_ports=(9181 9182 9183)
pids=()
stopping=

say "building the web client (make web)"
make --no-print-directory web
say "building the homeserver (bin/homeserver)"
mkdir -p bin
CGO_ENABLED=0 "$GO" build -o bin/homeserver ./cmd/homeserver

# alive PID: the process still runs.
alive() { kill -0 "$1" 2>/dev/null; }

# stop_all: SIGTERM to every server still running, then wait for them (a
# server has 10 seconds to finish its requests; SIGKILL after 30).
stop_all() {
	local pid i
	for pid in ${pids[@]+"${pids[@]}"}; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in ${pids[@]+"${pids[@]}"}; do
		for ((i = 0; i < 300; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			say "pid $pid did not stop within 30 s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	wait 2>/dev/null || true
}

on_signal() {
	stopping=1
	trap - INT TERM
	say "stopping the homeservers"
	stop_all
	pids=()
	exit 0
}
trap on_signal INT TERM
trap 'stop_all' EXIT

# prefix NAME: copies stdin to stdout with "NAME | " before each line. It
# ignores INT and TERM so that it keeps reading until its server has logged
# its shutdown (a closed pipe would kill the server mid-shutdown).
# (A shell loop rather than awk: mawk, Debian's awk, reads a pipe in blocks.)
prefix() {
	trap '' INT TERM
	local line
	while IFS= read -r line || [ -n "$line" ]; do
		printf '%s | %s\n' "$1" "$line"
	done
}

# healthy PORT: GET /healthz on 127.0.0.1:PORT answers 200.
healthy() {
	local status
	{ exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$1" >&3
	IFS= read -r status <&3 || status=
	exec 3<&- 3>&-
	[[ $status == HTTP/1.?" 200"* ]]
}

# One gossip key for the three servers, new each run.
gossip_key=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
for i in 0 1 2; do
	peers=()
	for j in 0 1; do # hs1 and hs2 know each other; hs3 comes through gossip
		[ "$i" = 2 ] || [ "$j" = "$i" ] || peers+=("localhost:${http_ports[j]}=127.0.0.1:${fed_ports[j]}")
	done
	data="$root/data/federation/${names[i]}"
	mkdir -p "$data"
	env PRIVATELINE_ENV=development \
		SERVER_NAME="localhost:${http_ports[i]}" \
		LISTEN_ADDR="127.0.0.1:${http_ports[i]}" \
		DATA_DIR="$data" \
		METRICS_ADDR= \
		WEB_ROOT="$root/clients/web/dist" \
		FEDERATION_LISTEN_ADDR="127.0.0.1:${fed_ports[i]}" \
		FEDERATION_ADVERTISE_ADDR= \
		FEDERATION_PEERS="${peers[*]-}" \
		FEDERATION_GOSSIP_ADDR="127.0.0.1:${gossip_ports[i]}" \
		FEDERATION_GOSSIP_ADVERTISE_ADDR= \
		FEDERATION_SEEDS="127.0.0.1:${gossip_ports[0]}" \
		FEDERATION_GOSSIP_KEY="$gossip_key" \
		bin/homeserver -env-file /dev/null > >(prefix "${names[i]}") 2>&1 &
	pids+=("$!")
done

# first_dead: prints the index of a server that is no longer running.
first_dead() {
	local i
	for i in "${!pids[@]}"; do
		if ! alive "${pids[i]}"; then
			echo "$i"
			return 0
		fi
	done
	return 1
}

# died I: reports server I's exit and ends (the EXIT trap stops the rest).
# Status 0 is a server that stopped on a signal: Ctrl-C reaches the servers
# too, and one may have stopped before this script's trap ran.
died() {
	local status=0
	wait "${pids[$1]}" || status=$?
	if [ "$status" = 0 ]; then
		say "${names[$1]} stopped; stopping the others"
		exit 0
	fi
	fail "${names[$1]} (pid ${pids[$1]}) exited with status $status; stopping the others"
}

for i in 0 1 2; do
	for ((t = 0; ; t++)); do
		healthy "${http_ports[i]}" && break
		if d=$(first_dead); then died "$d"; fi
		((t < 600)) || fail "${names[i]} does not answer GET http://127.0.0.1:${http_ports[i]}/healthz after 60 s"
		sleep 0.1
	done
done

{
	echo
	echo "federation: three homeservers are running; Ctrl-C stops them."
	for i in 0 1 2; do
		echo "  ${names[i]}  http://localhost:${http_ports[i]}  users name@localhost:${http_ports[i]}  federation udp 127.0.0.1:${fed_ports[i]}  gossip 127.0.0.1:${gossip_ports[i]}  data data/federation/${names[i]}"
	done
	echo "  Browsers share cookies between ports of one host: use one browser profile"
	echo "  (or private window) per server."
	echo
} >&2

# Wait until a server exits or a signal arrives (the sleep runs in the
# background so that the traps run at once).
while [ -z "$stopping" ]; do
	if d=$(first_dead); then died "$d"; fi
	sleep 1 &
	wait $! || true
done
