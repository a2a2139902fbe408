import { ConfigError } from '../../../common/config.js';
import type { Logger } from '../../../common/logger.js';
import type { ManagerConfig } from '../config.js';
import { createEmbeddedStore } from './embedded-store.js';
import { createEtcdStore } from './etcd-store.js';
import { SCHEMA_KEY, SCHEMA_VERSION } from './records.js';
import type { Store } from './store.js';

export function openStore(config: ManagerConfig['store']): Store {
  return config.type === 'embedded'
    ? createEmbeddedStore(config.path)
    : createEtcdStore({ endpoints: config.endpoints, prefix: config.prefix, dialTimeoutMs: config.dial_timeout });
}

/**
 * retryStore runs fn until it stops failing for want of a store (retrying with a clear
 * log line, never a stack trace); a ConfigError, or any error once signal is aborted, ends it.
 */
export async function retryStore<T>(store: Store, log: Logger, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  let delay = 500;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      if (signal.aborted) throw err;
      log.error({ store: store.description, retryInMs: delay }, `${(err as Error).message}; retrying`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
}

/** ensureSchema waits until the store answers, then checks or writes meta/schema. */
export function ensureSchema(store: Store, log: Logger, signal: AbortSignal): Promise<void> {
  return retryStore(store, log, signal, async () => {
    const raw = await store.get(SCHEMA_KEY);
    if (raw === undefined) {
      await store.commit([{ key: SCHEMA_KEY, value: new TextEncoder().encode(String(SCHEMA_VERSION)) }]);
      return;
    }
    const version = Number(new TextDecoder().decode(raw));
    if (version > SCHEMA_VERSION) {
      throw new ConfigError(
        `store holds schema version ${version}, newer than this management node understands (${SCHEMA_VERSION}); upgrade the management node`,
      );
    }
  });
}
