#!/usr/bin/env bash
# make demo: a local cluster on the embedded store (one management node, two
# worker nodes), a few tasks through schedctl, the tables, then a clean stop.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/sched-demo.XXXXXX")
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/management-node.yaml" <<YAML
listen: 127.0.0.1:$port
store: {type: embedded, path: $work/manager}
log_level: warn
YAML
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

echo "==> starting a management node on 127.0.0.1:$port (embedded store in $work/manager)"
"$root/management-node/bin/management-node" -f "$work/management-node.yaml" 2>"$work/manager.log" &
pids+=($!)
for w in 1 2; do
  "$root/worker-node/bin/worker-node" -f "$work/worker-$w.yaml" 2>"$work/worker-$w.log" &
  pids+=($!)
done

echo "==> waiting for both workers to connect"
for _ in $(seq 1 100); do
  n=$(schedctl workers ls 2>/dev/null | grep -c ' connected' || true)
  [ "$n" -ge 2 ] && break
  sleep 0.1
done

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
sleep 1

echo
echo "\$ schedctl workers ls"
schedctl workers ls
echo
echo "\$ schedctl tasks ls"
schedctl tasks ls
echo
echo "==> stopping the cluster"
