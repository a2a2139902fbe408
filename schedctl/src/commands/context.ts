// What every command gets from the CLI core: I/O, settings, the client and
// the printer. Settings and the client are made on first use so that help
// and usage errors never need a config file or a manager.
import type { CallOptions } from '../../../common/grpc-service.js';
import type { ManagementClient } from '../client.js';
import type { ResolvedConfig } from '../config.js';
import type { OutputFormat } from '../printers/formats.js';
import type { View } from '../printers/view.js';
import type { BytesCall } from '../paging.js';

export interface CliIo {
  out(text: string): void;
  /** Raw bytes to stdout (task output is not necessarily text); defaults to out() of its UTF-8 reading. */
  write?(data: Uint8Array): void;
  err(text: string): void;
  /** Whether stdout is a terminal (colour, hints). */
  isTTY: boolean;
  /** Whether stderr is a terminal (progress bars); unset = no. */
  errIsTTY?: boolean;
  env: Record<string, string | undefined>;
}

export interface Settings extends ResolvedConfig {
  output: OutputFormat;
  verbose: boolean;
}

export interface Ctx {
  readonly io: CliIo;
  settings(): Settings;
  client(): ManagementClient;
  /** A client of one manager of the cluster (e.g. the leader a follower named), with the configured TLS; closed with the run. */
  clientOf(address: string): ManagementClient;
  /** Options for a unary call: the configured deadline. */
  unary(): CallOptions;
  /**
   * A unary call answered as bytes, for the listings (paging.ts): over plain
   * HTTP/2 when it can, else through client(), with the configured deadline.
   * A command that only calls this is registered lean (commands/registry.ts):
   * then client() and grpc-js are loaded only if this needs them.
   */
  unaryBytes: BytesCall;
  print(view: View): void;
  /** A line on stderr when -v is given. */
  debug(message: string): void;
  /** The process exit code once the command returns (default 0). */
  exit(code: number): void;
}
