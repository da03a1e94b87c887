#!/usr/bin/env bash
# Load test of the server example, on SQLite: wrk drives 64 connections for
# 30 s of a mix of calls, then the run is checked, then the library is timed
# directly on the same mix, for the ratio between the two.
#
#   benches/load.sh [--connections N] [--seconds S] [--threads T]
#
# The mix, per request: 10% POST /v2/segments/create, 60% POST
# /v2/segments/members/add of 10 random PIDs (p- and 12 hex digits) to one of
# the wrk thread's last 32 segments, 30% GET /v2/segments/members (page 1) of
# one of them. The server is the release build, on a new SQLite file in a
# temporary directory (WAL, synchronous=NORMAL: the defaults), logging one
# line per request to a file.
#
# Reports requests/s and p50/p99 latency, and checks: no 5xx (counted by wrk
# and in the server's log), `PRAGMA integrity_check` ok, and every
# segment's current_size equal to its members (examples/load_direct.rs
# check). Then examples/load_direct.rs runs the same mix on the library
# directly for the same time, with as many threads as connections and with
# one thread (SQLite takes one writer at a time, so one thread is close to
# the library's best here), and the script prints the server's rate as a
# share of each.
#
# Needs wrk: Debian's package is installed when it is missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

connections=64
seconds=30
threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) connections="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    *) echo "usage: benches/load.sh [--connections N] [--seconds S] [--threads T]" >&2; exit 2 ;;
  esac
done

if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing wrk (Debian package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "error: wrk is needed (Debian: apt-get install wrk)" >&2
    exit 1
  fi
fi

echo "== building the server example and load_direct (release)"
cargo build --release --features wire,tokio --example server --example load_direct
target_dir="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)"
server_bin="$target_dir/release/examples/server"
direct_bin="$target_dir/release/examples/load_direct"

work="$(mktemp -d)"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
trap 'stop_server; rm -rf "$work"' EXIT

key="mk_test_load_$RANDOM$RANDOM"
"$server_bin" --db "$work/server.db" --listen 127.0.0.1:0 --api-key "$key=load" \
  >"$work/server.log" 2>&1 &
server_pid=$!
url=""
for _ in $(seq 100); do
  url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/server.log" | head -n 1 || true)"
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "error: the server did not start:" >&2
  cat "$work/server.log" >&2
  exit 1
fi

# The mix, for wrk. Each wrk thread keeps the ids of the segments it made
# (read from the create answers) and spreads its calls over the last 32.
cat >"$work/mix.lua" <<LUA
local key = "$key"
local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  segments = {}
  created = 0
  status_5xx = 0
  non_200 = 0
  math.randomseed(id * 7919 + os.time())
end

local function pid()
  return string.format("p-%06x%06x", math.random(0, 0xffffff), math.random(0, 0xffffff))
end

local function recent()
  local first = math.max(1, #segments - 31)
  return segments[math.random(first, #segments)]
end

function request()
  local roll = math.random(1, 100)
  local headers = { ["x-api-key"] = key, ["content-type"] = "application/json" }
  if #segments == 0 or roll <= 10 then
    created = created + 1
    local body = string.format('{"name": "load %d %d %06x"}', id, created, math.random(0, 0xffffff))
    return wrk.format("POST", "/v2/segments/create", headers, body)
  elseif roll <= 70 then
    local pids = {}
    for i = 1, 10 do pids[i] = '"' .. pid() .. '"' end
    local body = string.format('{"segment_id": "%s", "minerva_pids": [%s]}', recent(), table.concat(pids, ","))
    return wrk.format("POST", "/v2/segments/members/add", headers, body)
  else
    return wrk.format("GET", "/v2/segments/members?segment_id=" .. recent() .. "&page=1", headers)
  end
end

function response(status, headers, body)
  if status >= 500 then status_5xx = status_5xx + 1 end
  if status ~= 200 then non_200 = non_200 + 1 end
  local made = string.match(body, '^{"api_request_id":"[^"]*","segment_id":"([0-9a-f%-]+)"')
  if made then table.insert(segments, made) end
end

function done(summary, latency, requests)
  local n5xx, bad = 0, 0
  for _, thread in ipairs(threads) do
    n5xx = n5xx + thread:get("status_5xx")
    bad = bad + thread:get("non_200")
  end
  local e = summary.errors
  io.write(string.format(
    "LOAD requests=%d seconds=%.3f requests_per_s=%.1f p50_ms=%.3f p99_ms=%.3f status_5xx=%d non_200=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, n5xx, bad,
    e.connect + e.read + e.write + e.timeout))
end
LUA

echo "== wrk: $connections connections, ${seconds} s, $threads threads, against $url"
wrk --threads "$threads" --connections "$connections" --duration "${seconds}s" --timeout 30s \
  --latency --script "$work/mix.lua" "$url" | tee "$work/wrk.out"
stop_server

load_line="$(grep '^LOAD ' "$work/wrk.out")"
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
failed=0
logged_5xx="$(grep -c 'status=5[0-9][0-9]' "$work/server.log" || true)"
if [ "$(field "$load_line" status_5xx)" != 0 ] || [ "$logged_5xx" != 0 ]; then
  echo "FAIL: 5xx answers (wrk counted $(field "$load_line" status_5xx), the log has $logged_5xx)" >&2
  grep 'status=5[0-9][0-9]' "$work/server.log" | head -n 5 >&2 || true
  failed=1
fi
if [ "$(field "$load_line" non_200)" != 0 ] || [ "$(field "$load_line" socket_errors)" != 0 ]; then
  echo "note: $(field "$load_line" non_200) answers were not 200," \
    "$(field "$load_line" socket_errors) socket errors" >&2
fi

echo "== checking the server's database"
"$direct_bin" check --db "$work/server.db" --org load || failed=1

direct() {
  echo "== the library directly, the same mix: $1 thread(s), ${seconds} s" >&2
  rm -f "$work"/direct.db*
  "$direct_bin" run --db "$work/direct.db" --threads "$1" --seconds "$seconds" --org load
  "$direct_bin" check --db "$work/direct.db" --org load >&2
}
direct_many="$(direct "$connections")" || failed=1
echo "$direct_many"
direct_one="$(direct 1)" || failed=1
echo "$direct_one"

server_rps="$(field "$load_line" requests_per_s)"
row() { printf '%-34s %11s %9s %9s %s\n' "$@"; }
ratio() { awk -v s="$server_rps" -v d="$1" 'BEGIN { if (d > 0) printf "%.2f", s / d; else print "-" }'; }
echo
echo "== load: $connections connections, ${seconds} s, SQLite file (WAL, synchronous=NORMAL), $(nproc) cores"
row "" "per second" "p50 ms" "p99 ms" "server / this"
row "server example (HTTP, wrk)" "$server_rps" "$(field "$load_line" p50_ms)" "$(field "$load_line" p99_ms)" ""
for line in "$direct_many" "$direct_one"; do
  row "library directly, $(field "$line" threads) thread(s)" "$(field "$line" ops_per_s)" \
    "$(field "$line" p50_ms)" "$(field "$line" p99_ms)" "$(ratio "$(field "$line" ops_per_s)")"
done
if [ "$failed" != 0 ]; then
  echo "FAIL: see above" >&2
  exit 1
fi
echo "checks: no 5xx, integrity_check ok, every current_size equals its members"
