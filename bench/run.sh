#!/usr/bin/env bash
# make bench: runs every benchmark of the project and writes bench/report.md and its JSON twin bench/report.json.
# Each figure is the median and the spread (min–max) of repeated runs. A measurement that repeats itself inside
# (instance starts: 10 each; snapshot and promotion benchmarks: -benchtime runs) reports its own median and spread.
#
#   BENCH_RUNS      repeats of the API, 1,000-device rollout and idle-RSS measurements (default 3)
#   BENCH_10K_RUNS  repeats of the 10,000-device rollout (default 1: it takes about 5 minutes)
#   BENCH_LAYOUT_DEVICES  fleet of the rollout on the production layout (default 10,000)
#   BENCH_ONLY      space-separated subset of: api instances snapshots devices delivery rollouts layout dashboard dynsec
#                   (default: all but layout, about 6 minutes at 10,000 devices: ask for it by name). The groups not
#                   measured keep their figures from the previous bench/report.json, each with its own date and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin/flowyard
PORT=${BENCH_PORT:-18480}
RUNS=${BENCH_RUNS:-3}
RUNS_10K=${BENCH_10K_RUNS:-1}
ONLY=${BENCH_ONLY:-api instances snapshots devices delivery rollouts dashboard dynsec}
PG_ADMIN=${FLOWYARD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
TMP=$(mktemp -d)
SAMPLES=$TMP/samples.jsonl   # one measured value per line
SUMMARIES=$TMP/summary.jsonl # figures already aggregated by the measurement itself
FAILED=$TMP/failed.txt       # measurements that failed: the report names them, the others still count
touch "$SAMPLES" "$SUMMARIES" "$FAILED"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT

need() { # command debian-package
  command -v "$1" >/dev/null && return 0
  echo "installing $2 (Debian package)" >&2
  apt-get install -y "$2" >/dev/null 2>&1 || { echo "$1 is missing and could not be installed" >&2; exit 1; }
}
need wrk wrk
need jq jq
need mosquitto mosquitto

wanted() { [[ " $ONLY " == *" $1 "* ]]; }

# sample GROUP NAME UNIT VALUE: one run's value of a figure.
sample() {
  jq -nc --arg g "$1" --arg n "$2" --arg u "$3" --argjson v "$4" '{group:$g,name:$n,unit:$u,value:$v}' >> "$SAMPLES"
}

# summary GROUP NAME UNIT MEDIAN MIN MAX N: a figure its measurement aggregated over its own N runs.
summary() {
  jq -nc --arg g "$1" --arg n "$2" --arg u "$3" --argjson med "$4" --argjson lo "$5" --argjson hi "$6" --argjson k "$7" \
    '{group:$g,name:$n,unit:$u,median:$med,min:$lo,max:$hi,runs:$k}' >> "$SUMMARIES"
}

# ---- API throughput on SQLite and Postgres, and the idle RSS of `flowyard serve` ----

wait_ready() {
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "flowyard did not start" >&2; exit 1
}

# wrk unit → ms ("850.00us", "4.31ms", "1.20s").
to_ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) print v/1000; else if (v ~ /ms$/) print v+0; else if (v ~ /s$/) print v*1000; else print v }'; }

bench_api_once() { # store database-url
  local name=$1 db=$2 dir="$TMP/$1-$RANDOM"
  mkdir -p "$dir"
  $BIN migrate --data-dir "$dir" --database-url "$db" --log-level warn
  $BIN admin create-user --data-dir "$dir" --database-url "$db" --email bench@example.com --password bench-password --admin >/dev/null
  $BIN serve --data-dir "$dir" --database-url "$db" --listen "127.0.0.1:$PORT" --log-level warn &
  local pid=$!
  wait_ready
  curl -sf -c "$dir/cookies" -H 'Content-Type: application/json' -d '{"email":"bench@example.com","password":"bench-password"}' "http://127.0.0.1:$PORT/api/v1/auth/login" >/dev/null
  local api=(curl -sf -b "$dir/cookies" -H 'Content-Type: application/json')
  local tt team token
  tt=$("${api[@]}" -d '{"name":"Bench"}' "http://127.0.0.1:$PORT/api/v1/team-types" | jq -r .id)
  team=$("${api[@]}" -d "{\"name\":\"Bench\",\"teamTypeId\":\"$tt\"}" "http://127.0.0.1:$PORT/api/v1/teams" | jq -r .id)
  for i in $(seq 1 10); do "${api[@]}" -d "{\"name\":\"app-$i\"}" "http://127.0.0.1:$PORT/api/v1/teams/$team/applications" >/dev/null; done
  token=$("${api[@]}" -d '{"name":"bench"}' "http://127.0.0.1:$PORT/api/v1/user/tokens" | jq -r .token)
  sleep 2
  sample api "idle RSS of flowyard serve ($name)" MiB "$(awk '/VmRSS/{print $2/1024}' /proc/$pid/status)"
  wrk -t2 -c20 -d10s --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/api/v1/teams/$team/applications" > "$dir/wrk.txt"
  if grep -qE "Non-2xx|Socket errors" "$dir/wrk.txt"; then grep -E "Non-2xx|Socket errors" "$dir/wrk.txt" >&2; fi
  sample api "GET applications, $name: requests/s" req/s "$(awk '/Requests\/sec/{print $2}' "$dir/wrk.txt")"
  sample api "GET applications, $name: p50" ms "$(to_ms "$(awk '$1=="50%"{print $2}' "$dir/wrk.txt")")"
  sample api "GET applications, $name: p99" ms "$(to_ms "$(awk '$1=="99%"{print $2}' "$dir/wrk.txt")")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

bench_api() {
  # flowyard serve needs a Temporal frontend; a headless dev server in memory is enough for the API figures.
  local tport=${BENCH_TEMPORAL_PORT:-18733}
  ./bin/temporal server start-dev --headless --ip 127.0.0.1 --port "$tport" --namespace flowyard --log-level never >/dev/null 2>&1 &
  local temporal=$!
  export FLOWYARD_TEMPORAL_ADDRESS="127.0.0.1:$tport"
  for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$tport) 2>/dev/null && break; sleep 0.2; done
  for run in $(seq 1 "$RUNS"); do
    echo "api run $run/$RUNS" >&2
    bench_api_once sqlite ""
    local pgdb="fy_bench_$$_$run"
    psql "$PG_ADMIN" -qc "CREATE DATABASE $pgdb" >/dev/null
    bench_api_once postgres "${PG_ADMIN%/*}/$pgdb?sslmode=disable"
    psql "$PG_ADMIN" -qc "DROP DATABASE $pgdb WITH (FORCE)" >/dev/null
  done
  kill "$temporal"; wait "$temporal" 2>/dev/null || true
}

# ---- the measurements that are Go tests (FLOWYARD_BENCH=1) or Go benchmarks ----

measure() { # test-regexp [env...]: runs one measurement test of ./platform
  local test=$1; shift
  echo "measuring $test $*" >&2
  env FLOWYARD_BENCH=1 "$@" go test ./platform -run "^$test\$" -count=1 -timeout 40m > "$TMP/$test.log" 2>&1 ||
    { tail -50 "$TMP/$test.log" >&2; echo "$test $*" >> "$FAILED"; return 1; }
}

# The cost of the instance sandbox: Start → ready through the local driver, 10 starts in a bubblewrap sandbox with
# the network filter, 10 in the sandbox without it and 10 without either (BenchmarkStartToReady in drivers/local).
bench_sandbox() {
  echo "measuring instance starts with and without the sandbox" >&2
  go test ./drivers/local -run '^$' -bench 'BenchmarkStartToReady' -benchtime 10x -timeout 30m > "$TMP/sandbox.txt" 2>&1 ||
    { tail -50 "$TMP/sandbox.txt" >&2; echo "BenchmarkStartToReady (drivers/local)" >> "$FAILED"; return 0; }
  # Lines look like: BenchmarkStartToReady/sandbox=bwrap,network=filtered-2  10  … ns/op  98.2 MiB-rss  930 ms-max-ready  810 ms-median-ready  760 ms-min-ready
  awk '/^BenchmarkStartToReady\/sandbox=/ {
      mode=$1; sub(/.*sandbox=/, "", mode); sub(/-[0-9]+$/, "", mode)
      for (i=3; i<NF; i++) { if ($(i+1)=="ms-median-ready") med=$i; if ($(i+1)=="ms-min-ready") lo=$i; if ($(i+1)=="ms-max-ready") hi=$i }
      print mode, med, lo, hi, $2 }' "$TMP/sandbox.txt" |
    while read -r mode med lo hi n; do summary instances "driver Start → ready, sandbox=$mode" ms "$med" "$lo" "$hi" "$n"; done
}

bench_instances() {
  bench_sandbox
  measure TestMeasureInstances || return 0
  local j=bench/instances.json
  summary instances "POST → running (local driver)" s "$(jq .provisionSeconds.median $j)" "$(jq .provisionSeconds.min $j)" "$(jq .provisionSeconds.max $j)" 10
  summary instances "bare node red.js → Started flows" s "$(jq .bareNodeRedSeconds.median $j)" "$(jq .bareNodeRedSeconds.min $j)" "$(jq .bareNodeRedSeconds.max $j)" 10
  summary instances "RSS per running instance" MiB "$(jq .rssMiB.median $j)" "$(jq .rssMiB.min $j)" "$(jq .rssMiB.max $j)" 10
  sample instances "10 instances created at once → all running" s "$(jq .tenAtOnce.seconds $j)"
}

bench_snapshots() {
  echo "measuring snapshots and promotion" >&2
  go test ./platform -run '^$' -bench 'BenchmarkSnapshots|BenchmarkPromotion' -benchtime 5x -timeout 60m > "$TMP/snap.txt" 2>&1 ||
    { tail -50 "$TMP/snap.txt" >&2; echo "snapshot and promotion benchmarks" >> "$FAILED"; }
  # Lines look like: BenchmarkSnapshots/rollback/1MB-2  5  0 ns/op  1281 median-ms  1100 max-ms  1000 min-ms ...
  awk '/^Benchmark/ && /median-ms/ {
      name=$1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
      for (i=3; i<NF; i++) { if ($(i+1)=="median-ms") med=$i; if ($(i+1)=="min-ms") lo=$i; if ($(i+1)=="max-ms") hi=$i }
      print name, med, lo, hi, $2 }' "$TMP/snap.txt" |
    while read -r name med lo hi n; do summary snapshots "$name" ms "$med" "$lo" "$hi" "$n"; done
}

bench_devices() {
  measure TestMeasureDevices || return 0
  local j=bench/devices.json
  sample devices "platform memory per connected device (1,000 agents)" KiB "$(jq .platformKiBPerDevice $j)"
  sample devices "target change → 1,000 devices running" s "$(jq .targetChangeToAllRunningS $j)"
  sample devices "idle CPU with 1,000 connected devices" "% of a core" "$(jq .idleCpuPercentOfOneCore $j)"
}

# How fast a change reaches a device on the production layout (2 × flowyard serve, a worker, Postgres): a target
# change sent to the replica holding the device and to the other one, and a one-device rollout from the worker
# (BenchmarkDelivery in platform).
bench_delivery() {
  echo "measuring delivery across processes" >&2
  go test ./platform -run '^$' -bench 'BenchmarkDelivery' -benchtime 50x -timeout 30m > "$TMP/delivery.txt" 2>&1 ||
    { tail -50 "$TMP/delivery.txt" >&2; echo "BenchmarkDelivery (platform)" >> "$FAILED"; return 0; }
  # Lines look like: BenchmarkDelivery/across-replicas-2  50  48.32 max-ms  12.75 median-ms  4.453 min-ms
  awk '/^BenchmarkDelivery\// && /median-ms/ {
      name=$1; sub(/^BenchmarkDelivery\//, "", name); sub(/-[0-9]+$/, "", name)
      for (i=3; i<NF; i++) { if ($(i+1)=="median-ms") med=$i; if ($(i+1)=="min-ms") lo=$i; if ($(i+1)=="max-ms") hi=$i }
      print name, med, lo, hi, $2 }' "$TMP/delivery.txt" |
    while read -r name med lo hi n; do summary delivery "change → update at the device: $name" ms "$med" "$lo" "$hi" "$n"; done
}

bench_rollouts() {
  local n runs
  for n in 1000 10000; do
    runs=$RUNS; [ "$n" = 10000 ] && runs=$RUNS_10K
    for run in $(seq 1 "$runs"); do
      measure TestMeasureRollout FLOWYARD_BENCH_DEVICES=$n || continue
      sample rollouts "$n-device rollout: POST → succeeded" s "$(jq .rolloutSeconds bench/rollout.json)"
      sample rollouts "$n-device rollout: longest workflow history" events "$(jq .longestHistoryEvents bench/rollout.json)"
      sample rollouts "$n-device rollout: peak RSS of the platform" MiB "$(jq .peakRSSMiB bench/rollout.json)"
      sample rollouts "$n-device rollout: platform RSS with the fleet connected, settled (lowest over 90 s)" MiB "$(jq .settledRSSMiB bench/rollout.json)"
      sample rollouts "$n-device rollout: platform peak RSS during the rollout" MiB "$(jq .rolloutPeakRSSMiB bench/rollout.json)"
      sample rollouts "$n-device rollout: platform CPU during the rollout" s "$(jq .platformRolloutCPUSeconds bench/rollout.json)"
      sample rollouts "$n-device rollout: simulator process peak RSS" MiB "$(jq .simulatorPeakRSSMiB bench/rollout.json)"
      sample rollouts "$n-device rollout: simulator CPU during the rollout" s "$(jq .simulatorRolloutCPUSeconds bench/rollout.json)"
    done
  done
}

# The rollout to BENCH_LAYOUT_DEVICES (default 10,000) simulated devices on the production layout: Postgres, a
# worker and 2 × flowyard serve, each replica holding half of the fleet (TestMeasureRolloutLayout; about 6 minutes
# at 10,000 on 2 cores: provisioning, 90 s settling, the rollout).
bench_layout() {
  local n=${BENCH_LAYOUT_DEVICES:-10000} j=bench/rollout-layout.json p
  measure TestMeasureRolloutLayout FLOWYARD_BENCH_DEVICES="$n" || return 0
  sample layout "$n devices, production layout: provisioning" s "$(jq .provisionSeconds $j)"
  sample layout "$n devices, production layout: rollout POST → succeeded" s "$(jq .rolloutSeconds $j)"
  sample layout "$n devices, production layout: longest workflow history" events "$(jq .longestHistoryEvents $j)"
  for p in serve-a serve-b worker; do
    sample layout "$n devices, production layout: $p RSS with the fleet connected, settled (lowest over 90 s)" MiB "$(jq ".\"$p""SettledRSSMiB\"" $j)"
    sample layout "$n devices, production layout: $p peak RSS during the rollout" MiB "$(jq ".\"$p""RolloutPeakRSSMiB\"" $j)"
    sample layout "$n devices, production layout: $p CPU during the rollout" s "$(jq ".\"$p""RolloutCPUSeconds\"" $j)"
  done
  sample layout "$n devices, production layout: simulators' peak RSS (2 processes)" MiB "$(jq .simulatorsPeakRSSMiB $j)"
  sample layout "$n devices, production layout: simulators' CPU during the rollout" s "$(jq .simulatorsRolloutCPUSeconds $j)"
}

bench_dashboard() {
  # The browser scenario of TestDashboardInBrowser measures the instance list of an application with 100
  # instances: first load with nothing cached (cold) and a reload with the assets cached (warm).
  for run in $(seq 1 "$RUNS"); do
    measure TestDashboardInBrowser || continue
    local j=bench/dashboard.json
    sample dashboard "instance list (100 instances), cold: first contentful paint" ms "$(jq .cold.firstContentfulPaintMs $j)"
    sample dashboard "instance list (100 instances), cold: bytes transferred" KiB "$(jq '.cold.transferSize/1024' $j)"
    sample dashboard "instance list (100 instances), cold: JavaScript transferred" KiB "$(jq '.cold.scriptTransferSize/1024' $j)"
    sample dashboard "instance list (100 instances), warm: first contentful paint" ms "$(jq .warm.firstContentfulPaintMs $j)"
    sample dashboard "instance list (100 instances), warm: bytes transferred" KiB "$(jq '.warm.transferSize/1024' $j)"
  done
}

# What a device account costs the external broker (Mosquitto's dynamic-security plugin) when it holds 0, 1,000,
# 10,000 and 50,000 of them (TestMeasureDynamicSecurity in broker/mosquitto; about 5 minutes).
bench_dynsec() {
  echo "measuring Mosquitto's dynamic security at 0 to 50,000 device accounts" >&2
  FLOWYARD_BENCH=1 go test ./broker/mosquitto -run '^TestMeasureDynamicSecurity$' -count=1 -timeout 60m > "$TMP/dynsec.log" 2>&1 ||
    { tail -50 "$TMP/dynsec.log" >&2; echo "TestMeasureDynamicSecurity (broker/mosquitto)" >> "$FAILED"; return 0; }
  local j=bench/dynsec.json n
  for n in $(jq -r '.sizes[].accounts' $j); do
    summary dynsec "device account added at $n accounts (role and client)" ms \
      "$(jq ".sizes[] | select(.accounts == $n) | .addMs" $j)" "$(jq ".sizes[] | select(.accounts == $n) | .addMsMin" $j)" \
      "$(jq ".sizes[] | select(.accounts == $n) | .addMsMax" $j)" 10
    sample dynsec "Mosquitto CPU per account added at $n accounts" ms "$(jq ".sizes[] | select(.accounts == $n) | .addMosquittoCpuMs" $j)"
    sample dynsec "Mosquitto RSS with $n accounts" MiB "$(jq ".sizes[] | select(.accounts == $n) | .mosquittoRSSMiB" $j)"
  done
  for n in $(jq -r '.sequentialAddSeconds | keys[]' $j); do
    sample dynsec "$n accounts added one after the other (summed from the per-add figures)" h "$(jq ".sequentialAddSeconds[\"$n\"] / 3600" $j)"
  done
  # A fleet on the external broker: 300 simulated agents provision (a broker account each) and take a rollout.
  # Larger bursts outrun the broker: each account costs it a rewrite of its file (see deploy/README.md).
  for run in $(seq 1 "$RUNS"); do
    measure TestMeasureRollout FLOWYARD_BENCH_BROKER=external FLOWYARD_BENCH_DEVICES=300 || continue
    local r=bench/rollout-external.json
    sample dynsec "external broker, 300 devices: provisioning" s "$(jq .provisionSeconds $r)"
    sample dynsec "external broker, 300 devices: rollout POST → succeeded" s "$(jq .rolloutSeconds $r)"
    sample dynsec "external broker, 300 devices: Mosquitto memory per connected device" KiB "$(jq .mosquittoKiBPerDevice $r)"
    sample dynsec "external broker, 300 devices: platform peak RSS" MiB "$(jq .peakRSSMiB $r)"
  done
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
make -s build >/dev/null
for part in api instances snapshots devices delivery rollouts layout dashboard dynsec; do
  if wanted "$part"; then "bench_$part"; fi
done

# ---- the report: JSON twin first, markdown rendered from it ----

jq -s 'group_by([.group, .name]) | map({group: .[0].group, name: .[0].name, unit: .[0].unit, runs: length,
        samples: map(.value), min: (map(.value) | min), max: (map(.value) | max),
        median: (map(.value) | sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end)})' \
  "$SAMPLES" > "$TMP/aggregated.json"
jq -s '.' "$SUMMARIES" > "$TMP/summaries.json"
# Figures of this run carry its date and commit; groups not measured this time keep the previous report's figures.
[ -s bench/report.json ] && cp bench/report.json "$TMP/previous.json" || echo '{"figures":[]}' > "$TMP/previous.json"
jq -n --slurpfile a "$TMP/aggregated.json" --slurpfile s "$TMP/summaries.json" --slurpfile prev "$TMP/previous.json" \
  --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --arg machine "$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), $(go env GOVERSION)" \
  --arg load "$LOAD_BEFORE → $(cut -d' ' -f1-3 /proc/loadavg)" --arg only "$ONLY" \
  '["api","instances","snapshots","devices","delivery","rollouts","layout","dashboard","dynsec"] as $order
   | ($only | split(" ")) as $measured
   | ($prev[0].figures | map(select(.group as $g | $measured | index($g) | not)
       | .measured //= ($prev[0].date // "") | .commit //= ($prev[0].commit // ""))) as $kept
   | {date: $date, commit: $commit, machine: $machine, load: $load, measured: $measured,
      figures: (($s[0] + $a[0] | map(.measured = $date | .commit = $commit)) + $kept
                | sort_by((.group as $g | $order | index($g)), .name))}' > bench/report.json

{
  echo "# Flowyard benchmarks"
  echo
  echo "$(jq -r '"- date: \(.date)\n- commit: \(.commit)\n- machine: \(.machine)"' bench/report.json)"
  echo "- command: \`make bench\` (BENCH_ONLY=\"$ONLY\", BENCH_RUNS=$RUNS, BENCH_10K_RUNS=$RUNS_10K); raw figures in bench/report.json"
  echo "- load average (1, 5, 15 min) before → after: $(jq -r .load bench/report.json)"
  echo "- groups not in BENCH_ONLY keep their figures from an earlier run: the last column says when and at which commit"
  echo
  echo "| group | figure | median | spread (min–max) | runs | measured |"
  echo "|---|---|---|---|---|---|"
  jq -r '.figures[] | "| \(.group) | \(.name) | \(.median * 100 | round / 100) \(.unit) | \(.min * 100 | round / 100)–\(.max * 100 | round / 100) | \(.runs) | \(.measured[0:10]) \(.commit) |"' bench/report.json
  if [ -s "$FAILED" ]; then
    echo
    echo "Measurements that failed (their figures are missing above):"
    sed 's/^/- /' "$FAILED"
  fi
} > bench/report.md
cat bench/report.md
[ ! -s "$FAILED" ]
