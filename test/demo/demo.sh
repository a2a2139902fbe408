#!/usr/bin/env bash
# make demo: a local cluster on the embedded store (one management node, two
# worker nodes), a few tasks through schedctl, the tables, then a clean stop.
# Every wait is for the event itself (the manager's ready line, both workers
# connected, every task finished), bounded by a generous limit.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/sched-demo.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "demo: $*" >&2
  exit 1
}

# Port 0: the manager binds a free port itself and logs which (no other process can take it first).
cat >"$work/management-node.yaml" <<YAML
listen: 127.0.0.1:0
store: {type: embedded, path: $work/manager}
log_level: info
YAML
"$root/management-node/bin/management-node" -f "$work/management-node.yaml" 2>"$work/manager.log" &
manager=$!
pids+=("$manager")
port=
for _ in $(seq 1 300); do
  port=$(grep '"msg":"management node ready"' "$work/manager.log" 2>/dev/null | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2 || true)
  [ -n "$port" ] && break
  kill -0 "$manager" 2>/dev/null || fail "the management node exited: $(cat "$work/manager.log")"
  sleep 0.1
done
[ -n "$port" ] || fail "the management node was not ready after 30 s: $(cat "$work/manager.log")"
echo "==> started a management node on 127.0.0.1:$port (embedded store in $work/manager)"

for w in 1 2; do
  cat >"$work/worker-$w.yaml" <<YAML
manager: 127.0.0.1:$port
data_dir: $work/worker-$w
labels: {demo: worker-$w}
log_level: warn
YAML
done
printf 'manager: 127.0.0.1:%s\ntimeout: 10s\n' "$port" >"$work/schedctl.yaml"
schedctl() { "$root/schedctl/bin/schedctl" -c "$work/schedctl.yaml" "$@"; }

for w in 1 2; do
  "$root/worker-node/bin/worker-node" -f "$work/worker-$w.yaml" 2>"$work/worker-$w.log" &
  pids+=($!)
done

echo "==> waiting for both workers to connect"
n=0
for _ in $(seq 1 600); do
  n=$(schedctl workers ls 2>/dev/null | grep -c ' connected' || true)
  [ "$n" -ge 2 ] && break
  sleep 0.1
done
[ "$n" -ge 2 ] || fail "only $n of 2 workers connected after 60 s"

echo "==> schedctl tasks run --wait -- echo hello from sched"
id=$(schedctl tasks run --wait -- echo hello from sched)
echo
echo "\$ schedctl tasks show $id"
schedctl tasks show "$id"
echo
echo "==> submitting 6 more tasks, spread over the workers (the default, binpack, fills one first)"
for i in 1 2 3 4 5 6; do last=$(schedctl tasks run --spread --cpu 0.5 -- sh -c "echo task $i; sleep 0.$i"); done
echo "\$ schedctl tasks logs -f $last"
schedctl tasks logs -f "$last"
echo "==> schedctl tasks run --wait -- sh -c 'exit 3'"
schedctl tasks run --wait -- sh -c 'exit 3' >/dev/null && true
echo "(schedctl exited with $?, the task's exit code)"

echo "==> waiting for all 8 tasks to finish"
n=0
for _ in $(seq 1 600); do
  n=$(schedctl tasks ls 2>/dev/null | grep -cw 'done' || true)
  [ "$n" -ge 8 ] && break
  sleep 0.1
done
[ "$n" -ge 8 ] || fail "only $n of 8 tasks done after 60 s"

echo
echo "\$ schedctl workers ls"
schedctl workers ls
echo
echo "\$ schedctl tasks ls"
schedctl tasks ls
echo
echo "==> stopping the cluster"
