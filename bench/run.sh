#!/usr/bin/env bash
# make bench: measures the API on SQLite and Postgres with wrk (20 connections, 10 s) on
# GET /api/v1/teams/{id}/applications, and the idle RSS of `flowyard serve`. Writes bench/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin/flowyard
PORT=${BENCH_PORT:-18480}
PG_ADMIN=${FLOWYARD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  apt-get install -y wrk >/dev/null 2>&1 || { echo "wrk is missing and could not be installed" >&2; exit 1; }
fi

report=bench/report.md
{
  echo "# Flowyard benchmarks"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  echo "## API: GET /api/v1/teams/{id}/applications (wrk -t2 -c20 -d10s --latency, 10 applications, PAT auth)"
  echo
  echo "| store | requests/s | p50 | p99 | idle RSS of flowyard serve |"
  echo "|---|---|---|---|---|"
} > "$report"

wait_ready() {
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "flowyard did not start" >&2; exit 1
}

bench_store() { # name database-url
  local name=$1 db=$2 dir="$TMP/$1"
  mkdir -p "$dir"
  $BIN migrate --data-dir "$dir" --database-url "$db" --log-level warn
  $BIN admin create-user --data-dir "$dir" --database-url "$db" --email bench@example.com --password bench-password --admin >/dev/null
  $BIN serve --data-dir "$dir" --database-url "$db" --listen "127.0.0.1:$PORT" --log-level warn &
  local pid=$!
  wait_ready
  curl -sf -c "$dir/cookies" -H 'Content-Type: application/json' -d '{"email":"bench@example.com","password":"bench-password"}' "http://127.0.0.1:$PORT/api/v1/auth/login" >/dev/null
  local api=(curl -sf -b "$dir/cookies" -H 'Content-Type: application/json')
  local tt team token
  tt=$("${api[@]}" -d '{"name":"Bench"}' "http://127.0.0.1:$PORT/api/v1/team-types" | sed -E 's/.*"id":"([^"]+)".*/\1/')
  team=$("${api[@]}" -d "{\"name\":\"Bench\",\"teamTypeId\":\"$tt\"}" "http://127.0.0.1:$PORT/api/v1/teams" | sed -E 's/.*"id":"([^"]+)".*/\1/')
  for i in $(seq 1 10); do "${api[@]}" -d "{\"name\":\"app-$i\"}" "http://127.0.0.1:$PORT/api/v1/teams/$team/applications" >/dev/null; done
  token=$("${api[@]}" -d '{"name":"bench"}' "http://127.0.0.1:$PORT/api/v1/user/tokens" | sed -E 's/.*"token":"([^"]+)".*/\1/')
  sleep 2
  local rss
  rss=$(awk '/VmRSS/{printf "%.1f MiB", $2/1024}' /proc/$pid/status)
  wrk -t2 -c20 -d10s --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/api/v1/teams/$team/applications" > "$dir/wrk.txt"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/{print $2}' "$dir/wrk.txt")
  p50=$(awk '$1=="50%"{print $2}' "$dir/wrk.txt")
  p99=$(awk '$1=="99%"{print $2}' "$dir/wrk.txt")
  echo "| $name | $rps | $p50 | $p99 | $rss |" >> "$report"
  grep -E "Non-2xx|Socket errors" "$dir/wrk.txt" >&2 || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# flowyard serve needs a Temporal frontend; a headless dev server in memory is enough for the API figures.
TPORT=${BENCH_TEMPORAL_PORT:-18733}
./bin/temporal server start-dev --headless --ip 127.0.0.1 --port "$TPORT" --namespace flowyard --log-level never >/dev/null 2>&1 &
export FLOWYARD_TEMPORAL_ADDRESS="127.0.0.1:$TPORT"
for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$TPORT) 2>/dev/null && break; sleep 0.2; done

bench_store sqlite ""
pgdb="fy_bench_$$"
psql "$PG_ADMIN" -qc "CREATE DATABASE $pgdb" >/dev/null
bench_store postgres "${PG_ADMIN%/*}/$pgdb?sslmode=disable"
psql "$PG_ADMIN" -qc "DROP DATABASE $pgdb WITH (FORCE)" >/dev/null

# Instances: POST until running beside a bare node-red start (median of 10), RSS per instance, 10 at once.
FLOWYARD_BENCH=1 go test ./platform -run TestMeasureInstances -count=1 -timeout 20m >/dev/null
{
  echo
  echo "## Instances (go test ./platform -run TestMeasureInstances, FLOWYARD_BENCH=1; seconds and MiB)"
  echo
  echo '```json'
  cat bench/instances.json
  echo
  echo '```'
} >> "$report"

# Devices: 1,000 simulated agents (MQTT + HTTP) against `flowyard dev` in its own process: platform RSS per
# connected device, time for all to report running after a target change, idle CPU.
FLOWYARD_BENCH=1 go test ./platform -run TestMeasureDevices -count=1 -timeout 20m >/dev/null
{
  echo
  echo "## Devices (go test ./platform -run TestMeasureDevices, FLOWYARD_BENCH=1; 1,000 simulated agents)"
  echo
  echo '```json'
  cat bench/devices.json
  echo
  echo '```'
} >> "$report"

# Rollouts: 10,000 simulated devices (a separate agent process) from POST …/rollouts to succeeded, peak RSS of the
# process holding the platform, and the longest history of any run of the rollout workflow.
FLOWYARD_BENCH=1 go test ./platform -run TestMeasureRollout -count=1 -timeout 30m >/dev/null
{
  echo
  echo "## Rollout (go test ./platform -run TestMeasureRollout, FLOWYARD_BENCH=1; 10,000 simulated devices)"
  echo
  echo '```json'
  cat bench/rollout.json
  echo
  echo '```'
} >> "$report"
cat "$report"
