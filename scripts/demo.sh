#!/usr/bin/env bash
# The main job: install what is missing, build forkd and forkctl (release), start forkd on the
# embedded default data root, import a sample Cloud Hypervisor standby instance, fork it through the
# API (single forks, then a fan-out), print each fork's latency, mechanism and shared space, show the
# fork tree, remove this run's forks and stop forkd.
#
#   ./scripts/demo.sh [--data-root DIR] [--socket PATH] [--forks N] [--count N] [--keep]
#
# Idempotent: the imported template stays in the data root and is reused by the next run; every run
# names its forks after a fresh run id. A forkd that is already answering on the socket is used and
# left running; one this script started is stopped (SIGTERM, then waited for) on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."

data_root=/var/lib/forkengine
socket=/run/forkengine/forkd.sock
forks=5
fan_out=10
keep=false
template=demo-template

usage() {
  cat <<EOF
usage: $0 [--data-root DIR] [--socket PATH] [--forks N] [--count N] [--keep]
  --data-root DIR  forkd's data root (default $data_root)
  --socket PATH    forkd's Unix socket (default $socket)
  --forks N        single forks of the template (default $forks)
  --count N        then one request forking N at once, 0 for none (default $fan_out, at most 64)
  --keep           keep this run's forks (and forkd's instances) instead of removing them
EOF
}

while (($#)); do
  case "$1" in
    --data-root|--data-dir) data_root=${2:?}; shift 2 ;;
    --socket) socket=${2:?}; shift 2 ;;
    --forks) forks=${2:?}; shift 2 ;;
    --count) fan_out=${2:?}; shift 2 ;;
    --keep) keep=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
if ! [[ "$forks" =~ ^[0-9]+$ && "$fan_out" =~ ^[0-9]+$ ]] || ((forks < 1 || fan_out > 64)); then
  echo "demo: --forks must be at least 1 and --count 0..64" >&2
  exit 2
fi

bash scripts/setup.sh
# Warnings are errors for development (scripts/test.sh); a user's first build must not stop at a
# warning that only some compiler version emits.
cmake --preset release >/dev/null
cmake --build --preset release --target forkd forkctl
bin=$PWD/build/release/engine
forkctl() { "$bin/forkctl/forkctl" --socket "$socket" "$@"; }

forkd_pid=""
sample_dir=""
made=()
log="${TMPDIR:-/tmp}/forkd-demo.log"

stop_forkd() {
  [[ -n "$forkd_pid" ]] || return 0
  kill -TERM "$forkd_pid" 2>/dev/null || true
  for _ in $(seq 300); do
    kill -0 "$forkd_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$forkd_pid" 2>/dev/null; then
    echo "demo: forkd (pid $forkd_pid) did not stop within 30 s of SIGTERM; killing it (log: $log)" >&2
    kill -KILL "$forkd_pid" 2>/dev/null || true
  fi
  local status=0
  wait "$forkd_pid" 2>/dev/null || status=$?
  echo "forkd stopped (exit status $status)"
  forkd_pid=""
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ((${#made[@]})) && [[ "$keep" == false ]]; then
    forkctl rm "${made[@]}" >/dev/null || echo "demo: could not remove every fork of this run" >&2
    echo "removed this run's ${#made[@]} forks"
  fi
  [[ -z "$sample_dir" ]] || rm -rf -- "$sample_dir"
  stop_forkd
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo
if forkctl health >/dev/null 2>&1; then
  echo "using the forkd already answering at $socket (it stays running)"
else
  "$bin/forkd/forkd" --data-root "$data_root" --socket "$socket" --loop-pool auto >"$log" 2>&1 &
  forkd_pid=$!
  echo "started forkd (pid $forkd_pid) on data root $data_root, socket $socket; log: $log"
  until forkctl health >/dev/null 2>&1; do
    if ! kill -0 "$forkd_pid" 2>/dev/null; then
      forkd_pid=""
      echo "demo: forkd exited before it answered; its log ($log):" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
fi
forkctl health
forkctl storage

if forkctl show "$template" >/dev/null 2>&1; then
  echo "reusing $template from an earlier run"
else
  sample_dir=$(mktemp -d "${TMPDIR:-/var/tmp}/forkengine-sample.XXXXXX")
  forkctl sample-instance "$sample_dir/guest" --disk-size 10G --memory-size 256M
  forkctl create "$template" --hypervisor cloud-hypervisor --import "$sample_dir/guest"
  rm -rf -- "$sample_dir"
  sample_dir=""
fi

run=$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n')
echo
echo "forking $template $forks times one by one, then $fan_out in one request (run id $run):"
for i in $(seq "$forks"); do
  header=$([[ $i == 1 ]] || echo --no-header)
  forkctl fork "$template" --name "fork-$run-$i" $header
  made+=("fork-$run-$i")
done
forkctl fork "fork-$run-1" --name "fork-$run-1-a" --no-header  # a fork of a fork
made+=("fork-$run-1-a")
if ((fan_out > 0)); then
  forkctl fork "$template" --name "fan-$run" --count "$fan_out" --no-header
  for i in $(seq "$fan_out"); do made+=("fan-$run-$i"); done
fi

echo
echo "fork tree:"
forkctl tree
echo
forkctl storage | grep -E '^(backend|volumes|filesystem)'
if [[ "$keep" == true ]]; then
  echo "kept this run's forks: ${made[*]}"
  made=()
fi
