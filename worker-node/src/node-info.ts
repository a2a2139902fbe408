// What this node tells the manager about itself in Hello.
import os from 'node:os';
import { create } from '@bufbuild/protobuf';
import { HardwareInfoSchema, ResourcesSchema, type HardwareInfo, type Isolation, type Resources } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { WorkerConfig } from './config.js';

export interface NodeInfo {
  /** The name asked for in Hello: the configured one, else the hostname (the manager makes it unique). */
  name: string;
  capacity: Resources;
  labels: Record<string, string>;
  hardware: HardwareInfo;
  /** What the worker enforces on its tasks (cgroups, users), for Hello; set by the daemon once its executor knows. */
  isolation?: Isolation;
}

export function detectNodeInfo(config: Pick<WorkerConfig, 'capacity' | 'labels'> & { name?: string | undefined }): NodeInfo {
  const cores = os.availableParallelism();
  const memory = os.totalmem();
  const hostname = os.hostname();
  return {
    // A hostname with characters a name may not have gets "-" for them, as the manager would.
    name: config.name ?? hostname.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 63),
    capacity: create(ResourcesSchema, {
      millicpu: BigInt(Math.round((config.capacity?.cpu ?? cores) * 1000)),
      memoryBytes: BigInt(config.capacity?.memory ?? memory),
    }),
    // Configured labels win over the built-ins, so an operator can correct them.
    labels: { hostname, os: os.platform(), arch: os.arch(), ...config.labels },
    hardware: create(HardwareInfoSchema, {
      hostname,
      os: os.platform(),
      arch: os.arch(),
      kernel: os.release(),
      cpuCount: cores,
      cpuModel: os.cpus()[0]?.model.trim() ?? '',
      memoryBytes: BigInt(memory),
    }),
  };
}

interface Amount {
  millicpu: number;
  memoryBytes: number;
}

/** Why a task of `req` does not fit next to `used` within `capacity`, or undefined when it fits. */
export function overCapacity(used: Amount, req: Amount, capacity: { millicpu: bigint; memoryBytes: bigint } | undefined): string | undefined {
  if (!capacity) return undefined;
  const cpu = Number(capacity.millicpu);
  const mem = Number(capacity.memoryBytes);
  if (used.millicpu + req.millicpu > cpu) return `over capacity: cpu ${used.millicpu}m in use + ${req.millicpu}m requested > ${cpu}m`;
  if (used.memoryBytes + req.memoryBytes > mem) {
    return `over capacity: memory ${used.memoryBytes} bytes in use + ${req.memoryBytes} requested > ${mem}`;
  }
  return undefined;
}

/** What the node has left right now, sent in every Pong for the manager's scoring. */
export interface LiveLoad {
  /** 1-minute load average (0 where the OS has none, e.g. Windows). */
  load1: number;
  load5?: number;
  load15?: number;
  memoryFreeBytes: bigint;
}

export function liveLoad(): LiveLoad {
  const [load1 = 0, load5 = 0, load15 = 0] = os.loadavg();
  return { load1, load5, load15, memoryFreeBytes: BigInt(os.freemem()) };
}
