# bench/lib.sh: what the benchmark scripts share. Sourced, not run; expects
# $root (the repository) to be set.

# bench_build BUILD WORK TARGET...: a Release build of TARGET... in BUILD
# (tests off), its logs in WORK, shown if it fails.
bench_build() {
  local build=$1 work=$2
  shift 2
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLF_TESTS=OFF >"$work/cmake.log" 2>&1 ||
    { cat "$work/cmake.log"; return 1; }
  cmake --build "$build" --target "$@" -j"$(nproc)" >>"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; return 1; }
}

# bench_await_ready HPORT PID LOG [SECONDS (10)]: waits for the server PID
# to answer /readyz on the health port HPORT; fails, showing LOG, when the
# server exits or is not ready in time (a port in use, say).
bench_await_ready() {
  local hport=$1 pid=$2 log=$3 secs=${4:-10} i
  for ((i = 0; i < secs * 20; i++)); do
    if curl -fs "http://127.0.0.1:$hport/readyz" >/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.05
  done
  echo "bench: the server was not ready in $secs s (health port $hport in use?)" >&2
  cat "$log" >&2
  return 1
}

# bench_wrk_script WORK: writes WORK/post.lua, a wrk script that POSTs
# WORK/review.json as JSON, followed by the Lua read from standard input
# (the run's `done` function, which prints its RESULT line).
bench_wrk_script() {
  {
    cat <<EOT
local f = assert(io.open("$1/review.json", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
EOT
    cat
  } >"$1/post.lua"
}
