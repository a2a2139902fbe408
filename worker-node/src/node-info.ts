// What this node tells the manager about itself in Hello.
import os from 'node:os';
import { create } from '@bufbuild/protobuf';
import { HardwareInfoSchema, ResourcesSchema, type HardwareInfo, type Resources } from '../../proto/gen/sched/v1/types_pb.js';
import type { WorkerConfig } from './config.js';

export interface NodeInfo {
  capacity: Resources;
  labels: Record<string, string>;
  hardware: HardwareInfo;
}

export function detectNodeInfo(config: Pick<WorkerConfig, 'capacity' | 'labels'>): NodeInfo {
  const cores = os.availableParallelism();
  const memory = os.totalmem();
  const hostname = os.hostname();
  return {
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
