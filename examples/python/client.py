#!/usr/bin/env python3
"""Runs one command on a sched cluster, waits for it and prints how it ended, then the workers.

A client of the management node's gRPC API (ManagementService in proto/schedapi/v1/) written
against the stubs generate.sh makes from proto/, as a starting point for clients in other
languages (docs/protocol.md is the reference):

    ./generate.sh
    python3 client.py --manager 127.0.0.1:7070 -- echo hi
    python3 client.py --manager mgr-1:7070,mgr-2:7070 \\
        --tls-ca ca.pem --tls-cert admin.pem --tls-key admin-key.pem -- ./build.sh

Exit status, as `schedctl tasks run --wait`: the task's exit code (128+N when signal N killed
it), 125 when it is dead (it will never run), 1 when the cluster fails or cannot be reached.
"""
import argparse
import os
import signal
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "gen"))
try:
    import grpc
except ImportError:
    sys.exit("client.py: no grpc module: install python3-grpcio (Debian/Ubuntu) or pip install grpcio")
try:
    from schedapi.v1 import management_pb2 as api
    from schedapi.v1 import management_pb2_grpc as api_grpc
    from schedapi.v1 import types_pb2 as types
except ImportError as err:
    sys.exit(f"client.py: {err}: generate the stubs first ({os.path.join(HERE, 'generate.sh')})")

# Retried with the same request (RunTask keeps its idempotency key, so it never creates twice):
# the manager is restarting, failing over, or did not answer in time.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
LEADER_METADATA = "sched-leader"
ENDED = (types.TASK_STATE_DONE, types.TASK_STATE_DEAD)


class Cluster:
    """The managers of one cluster: calls go to the leader, found by following NotLeader answers."""

    def __init__(self, addresses, credentials, server_name, timeout_s, retry_for_s):
        self.addresses = addresses
        self.retry_for_s = retry_for_s
        self.current = addresses[0]
        self.credentials = credentials
        self.options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        self.timeout_s = timeout_s
        self.channel = None
        self.stub = None

    def _connect(self, address):
        if self.channel is not None:
            self.channel.close()
        self.current = address
        if self.credentials is None:
            self.channel = grpc.insecure_channel(address, options=self.options)
        else:
            self.channel = grpc.secure_channel(address, self.credentials, options=self.options)
        self.stub = api_grpc.ManagementServiceStub(self.channel)

    def close(self):
        if self.channel is not None:
            self.channel.close()

    def _redirect(self, err, failures, give_up):
        """After a failed call: moves to the leader it named, or (until give_up) to the next
        manager after a pause. Returns False when the error is final."""
        trailers = dict(err.trailing_metadata() or ())
        leader = trailers.get(LEADER_METADATA)
        if err.code() == grpc.StatusCode.FAILED_PRECONDITION and leader and failures < 2 * len(self.addresses) + 2:
            self._connect(leader)
            return True
        if err.code() not in RETRYABLE or time.monotonic() > give_up:
            return False
        time.sleep(min(0.2 * 2 ** min(failures, 4), 2.0))
        self._connect(self.addresses[(self.addresses.index(self.current) + 1) % len(self.addresses)]
                      if self.current in self.addresses else self.addresses[0])
        return True

    def call(self, method, request):
        """One unary call, retried on the leader or another manager for up to retry_for_s."""
        if self.stub is None:
            self._connect(self.current)
        give_up = time.monotonic() + self.retry_for_s
        failures = 0
        while True:
            try:
                return getattr(self.stub, method)(request, timeout=self.timeout_s)
            except grpc.RpcError as err:
                if not self._redirect(err, failures, give_up):
                    raise
                failures += 1

    def wait(self, task_id):
        """The task once it has ended, from WatchTasks (reopened after a restart or failover)."""
        if self.stub is None:
            self._connect(self.current)
        failures = 0
        give_up = time.monotonic() + self.retry_for_s
        while True:
            try:
                # No deadline: the task may run for days. The stream sends the task now and on
                # every stored change, and ends once it is done or dead.
                for reply in self.stub.WatchTasks(api.WatchTasksRequest(ids=[task_id])):
                    failures, give_up = 0, time.monotonic() + self.retry_for_s
                    if reply.task.state in ENDED:
                        return reply.task
                # Ended without a final state (retention removed it meanwhile): ask once more.
                return self.call("GetTask", api.GetTaskRequest(id=task_id)).task
            except grpc.RpcError as err:
                if not self._redirect(err, failures, give_up):
                    raise
                failures += 1


def outcome(task):
    """How an ended task ended (TaskOutcome; common/outcome.ts in the repository) and the exit status to give."""
    if task.state == types.TASK_STATE_DONE:
        if task.signal:
            number = getattr(signal, task.signal, None)
            code = 128 + int(number) if number is not None else 1
        else:
            code = task.exit_code
        if task.timed_out:
            return "timed-out", code
        return ("succeeded" if code == 0 else "failed"), code
    reason = task.dead_reason.split(":")[0].split(" ")[0]
    if reason == "start-failed":
        return "failed", task.exit_code  # 127 not found, 126 not executable, as a shell says
    return ("cancelled" if reason == "cancelled" else "lost"), 125


def print_task(task):
    name, code = outcome(task)
    print(f"task:      {task.id}")
    print(f"outcome:   {name}" + (f" ({task.dead_reason})" if task.dead_reason else ""))
    print(f"exit code: {task.exit_code}" + (f" (signal {task.signal})" if task.signal else ""))
    print(f"worker:    {task.worker_id or '-'}")
    if task.started_unix_ms and task.finished_unix_ms:
        print(f"ran:       {task.finished_unix_ms - task.started_unix_ms} ms")
    if task.peak_memory_bytes or task.cpu_time_us:
        print(f"usage:     peak memory {task.peak_memory_bytes} bytes, cpu {task.cpu_time_us} us")
    for label, tail in (("stdout", task.stdout_tail), ("stderr", task.stderr_tail)):
        if tail:
            print(f"{label}:    " + tail.decode("utf-8", "replace").rstrip("\n").replace("\n", "\n           "))
    if task.error:
        print(f"error:     {task.error}")
    return code


def print_workers(cluster):
    """Every worker, a page of at most 1,000 at a time (next_page_token until it comes back empty)."""
    print(f"{'WORKER':<38} {'NAME':<16} {'STATE':<12} {'CPU':>11} {'TASKS':>5}  CGROUPS")
    token = ""
    while True:
        page = cluster.call("ListWorkers", api.ListWorkersRequest(limit=1000, page_token=token))
        for w in page.workers:
            state = types.WorkerState.Name(w.state).removeprefix("WORKER_STATE_").lower()
            if w.draining:
                state += ",draining"
            cpu = f"{w.allocated.millicpu / 1000:g}/{w.capacity.millicpu / 1000:g}"
            print(f"{w.id:<38} {w.name:<16} {state:<12} {cpu:>11} {w.running_tasks:>5}  {w.isolation.cgroups or 'none'}")
        token = page.next_page_token
        if not token:
            return


def credentials(args):
    given = [args.tls_ca, args.tls_cert, args.tls_key]
    if not any(given):
        return None
    if not all(given):
        sys.exit("client.py: mutual TLS needs --tls-ca, --tls-cert and --tls-key (an admin certificate)")
    pems = []
    for path in given:
        with open(path, "rb") as f:
            pems.append(f.read())
    return grpc.ssl_channel_credentials(root_certificates=pems[0], private_key=pems[2], certificate_chain=pems[1])


def main():
    parser = argparse.ArgumentParser(description="Run a command on a sched cluster and wait for it.")
    parser.add_argument("--manager", default=os.environ.get("SCHED_MANAGER", "127.0.0.1:7070"),
                        help="host:port of the management node, or several comma-separated (default: $SCHED_MANAGER or 127.0.0.1:7070)")
    parser.add_argument("--tls-ca", help="mutual TLS: the cluster CA (ca.pem)")
    parser.add_argument("--tls-cert", help="mutual TLS: an admin certificate (schedctl tls cert create --role admin)")
    parser.add_argument("--tls-key", help="mutual TLS: its key")
    parser.add_argument("--tls-server-name", help="the name to check the manager's certificate against (default: the host dialled)")
    parser.add_argument("--idempotency-key", default=f"py-{uuid.uuid4()}",
                        help="a repeat with the same key answers with the same task and runs nothing (default: a fresh one)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each request (default 10)")
    parser.add_argument("--retry-for", type=float, default=30.0,
                        help="seconds to keep retrying while no manager answers (restart, failover; default 30)")
    parser.add_argument("argv", nargs="+", metavar="-- CMD ARGS", help="the command to run")
    args = parser.parse_args()

    cluster = Cluster([a.strip() for a in args.manager.split(",") if a.strip()], credentials(args),
                      args.tls_server_name, args.timeout, args.retry_for)
    try:
        spec = types.TaskSpec(argv=args.argv)
        created = cluster.call("RunTask", api.RunTaskRequest(spec=spec, idempotency_key=args.idempotency_key)).task
        print(f"submitted: {created.id} (idempotency key {args.idempotency_key})", flush=True)
        code = print_task(cluster.wait(created.id))
        print()
        print_workers(cluster)
        return code
    except grpc.RpcError as err:
        print(f"client.py: {cluster.current}: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
