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
