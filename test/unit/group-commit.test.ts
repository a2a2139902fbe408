// Group commit on a real embedded store: batching, coalescing, txn limits.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { chunkBatch, createGroupCommitter, MAX_TXN_BYTES } from '../../management-node/src/store/group-commit.js';
import { MAX_TXN_OPS, type Store, type StoreOp } from '../../management-node/src/store/store.js';

const log = pino({ level: 'silent' });

describe('group commit', () => {
  let dir: string;
  let store: Store;
  let txns: StoreOp[][];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-gc-'));
    const inner = createEmbeddedStore(dir);
    txns = [];
    store = { ...inner, commit: (ops) => (txns.push(ops), inner.commit(ops)), close: () => inner.close(), get: (k) => inner.get(k) };
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('commits concurrent writes in few txns, each key once, the last value winning', async () => {
    const c = createGroupCommitter(store, log);
    const writes: Array<Promise<bigint>> = [];
    for (let i = 0; i < 1000; i++) writes.push(c.write(`k${i % 300}`, new Uint8Array([i % 256])));
    await Promise.all(writes);
    expect(txns.length).to.be.lessThan(10);
    for (const ops of txns) {
      expect(ops.length).to.be.at.most(MAX_TXN_OPS);
      expect(new Set(ops.map((o) => o.key)).size).to.equal(ops.length);
    }
    expect([...(await store.get('k0'))!]).to.deep.equal([900 % 256]);
  });

  it('answers nobody before their write is committed, and a delete wins over an earlier put', async () => {
    const c = createGroupCommitter(store, log);
    const put = c.write('a', new Uint8Array([1]));
    expect(await store.get('a')).to.equal(undefined);
    await put;
    expect(await store.get('a')).to.not.equal(undefined);
    const p2 = c.write('b', new Uint8Array([2]));
    const d2 = c.write('b', null);
    await Promise.all([p2, d2]);
    expect(await store.get('b')).to.equal(undefined);
  });

  it('splits by bytes as well as by ops', () => {
    const big = new Uint8Array(300 * 1024);
    const chunks = chunkBatch(Array.from({ length: 10 }, (_, i) => [`k${i}`, { value: big }] as [string, { value: Uint8Array }]));
    expect(chunks.length).to.be.greaterThan(2);
    for (const ch of chunks) expect(ch.reduce((n, [, p]) => n + p.value.byteLength, 0)).to.be.at.most(MAX_TXN_BYTES);
    const small = chunkBatch(Array.from({ length: 300 }, (_, i) => [`k${i}`, { value: null }] as [string, { value: null }]));
    expect(small.map((c) => c.length)).to.deep.equal([128, 128, 44]);
  });
});
