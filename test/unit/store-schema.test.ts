import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { ensureSchema } from '../../management-node/src/store/open-store.js';
import { SCHEMA_KEY, SCHEMA_VERSION } from '../../management-node/src/store/records.js';

describe('store schema', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sched-schema-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const log = pino({ level: 'silent' });

  it('writes the schema version into a new store and accepts it next time', async () => {
    const store = createEmbeddedStore(dir);
    try {
      await ensureSchema(store, log, new AbortController().signal);
      expect(new TextDecoder().decode(await store.get(SCHEMA_KEY))).to.equal(String(SCHEMA_VERSION));
      await ensureSchema(store, log, new AbortController().signal);
    } finally {
      await store.close();
    }
  });

  it('refuses a store written by a newer management node, saying so', async () => {
    const store = createEmbeddedStore(dir);
    try {
      await store.commit([{ key: SCHEMA_KEY, value: new TextEncoder().encode(String(SCHEMA_VERSION + 1)) }]);
      const err = await ensureSchema(store, log, new AbortController().signal).then(() => undefined, (e: Error) => e);
      expect(err?.message).to.match(/schema version 2, newer than this management node understands \(1\); upgrade/);
    } finally {
      await store.close();
    }
  });
});
