// What a running command needs from the core: its settings, a client and the
// printer of the chosen format, loaded just before its action (cli.ts's
// preAction hook), and only what this run needs:
//
// - without a config file (config-defaults.ts), neither zod nor yaml nor the
//   TLS helpers: config.ts and common/tls.ts come only when a file is read;
// - only the printer of the -o format (printers/load.ts);
// - for a lean command (the listings, commands/registry.ts), no grpc-js
//   client unless a call needs it: their calls take the plain HTTP/2 road
//   when they can (h2-unary.ts).
//
// Each import() is a chunk of its own in the built schedctl (build.mjs); the
// small modules every command needs are imported statically, which saves
// Node a file (and a round of the event loop) each.
import { create, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { TlsFiles } from '../../common/tls.js';
import type { ManagementClient } from './client.js';
import type { ConfigFlags, ResolvedConfig } from './config.js';
import { configWithoutFile } from './config-defaults.js';
import { H2Channel, H2GaveUp, plainRoad } from './h2-unary.js';
import type { UnaryMethod } from './paging.js';
import type { OutputFormat } from './printers/formats.js';
import { loadPrinter } from './printers/load.js';
import type { Printer } from './printers/view.js';

export interface Runtime {
  /** Resolves the config (the file is read here, so its errors come from the command that needs it). */
  resolveConfig(): ResolvedConfig;
  /** The grpc-js client; for a lean command, after loadClient(). */
  createClient(manager: string, tls: TlsFiles | undefined): ManagementClient;
  loadClient(): Promise<void>;
  /** One call of Ctx.unaryBytes; `client` gives the grpc-js client, loaded if need be. */
  unaryBytes<I extends DescMessage>(
    settings: ResolvedConfig,
    method: UnaryMethod<I>,
    req: MessageInitShape<I>,
    deadlineMs: number | undefined,
    client: () => Promise<ManagementClient>,
  ): Promise<Buffer>;
  printer: Printer;
  /** Closes what unaryBytes opened (cli.ts closes the client). */
  close(): void;
}

export async function loadRuntime(
  flags: ConfigFlags,
  env: Record<string, string | undefined>,
  printing: { output: OutputFormat; color: boolean; headers: boolean },
  lean: boolean,
): Promise<Runtime> {
  const defaults = configWithoutFile(flags, env);
  const loadClientModule = () => import('./client.js');
  const [clientModule, printer, full] = await Promise.all([
    lean ? undefined : loadClientModule(),
    loadPrinter(printing.output, printing.color, printing.headers),
    defaults ? undefined : Promise.all([import('./config.js'), import('../../common/tls.js')]),
  ]);
  let client = clientModule;
  const credentials = (tls: TlsFiles | undefined): ChannelCredentials => {
    if (!client) throw new Error('client not loaded');
    if (!tls) return client.insecure();
    if (!full) throw new Error('TLS settings without a config file');
    return full[1].clientCredentials(tls);
  };
  let h2: H2Channel | undefined;
  /** With several managers: the leader's address, and a client of it alone, for the listings' calls. */
  let leader: string | undefined;
  let leaderClient: ManagementClient | undefined;
  // A lean command's first call is near: dial now, while its action's module loads. (With a
  // config file, the address is known only once the command reads it.)
  if (lean && defaults && !defaults.manager.includes(',') && plainRoad(defaults.manager, undefined, process.env)) {
    h2 = new H2Channel(defaults.manager);
    h2.dial();
  }
  const viaGrpc = async <I extends DescMessage>(
    method: UnaryMethod<I>,
    req: MessageInitShape<I>,
    deadline: number | undefined,
    grpcClient: () => Promise<ManagementClient>,
  ) => {
    const [{ rawUnary }, c] = await Promise.all([import('./grpc-bytes.js'), grpcClient()]);
    return rawUnary(c, method, req, deadline);
  };
  return {
    resolveConfig: () => defaults ?? full![0].resolveConfig(flags, env),
    createClient(manager, tls) {
      if (!client) throw new Error('client not loaded');
      return client.createManagementClient(manager, credentials(tls));
    },
    async loadClient() {
      client ??= await loadClientModule();
    },
    async unaryBytes(all, method, req, deadlineMs, allClient) {
      // One deadline for the call, whichever road it takes.
      const deadline = deadlineMs !== undefined ? Date.now() + deadlineMs : undefined;
      // Several managers: a listing reads from the leader, found once (any manager's Status names it).
      let settings = all;
      let grpcClient = allClient;
      if (all.manager.includes(',')) {
        client ??= await loadClientModule();
        const loaded = client;
        leader ??= await loaded.findLeader(all.manager, credentials(all.tls), deadlineMs);
        settings = { ...all, manager: leader };
        const only = leader;
        grpcClient = async () => (leaderClient ??= loaded.createManagementClient(only, credentials(all.tls)));
      }
      if (!plainRoad(settings.manager, settings.tls, process.env)) return viaGrpc(method, req, deadline, grpcClient);
      if (h2?.address !== settings.manager) {
        h2?.close();
        h2 = new H2Channel(settings.manager);
      }
      // Sent before this returns (nothing is awaited before it), as paging.ts counts on.
      try {
        return await h2.unary(`/${method.parent.typeName}/${method.name}`, toBinary(method.input, create(method.input, req)), deadline);
      } catch (err) {
        if (!(err instanceof H2GaveUp)) throw err;
        return viaGrpc(method, req, deadline, grpcClient);
      }
    },
    printer,
    close: () => {
      h2?.close();
      leaderClient?.close();
    },
  };
}
