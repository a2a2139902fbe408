// One Store contract, run against a real etcd and the embedded lmdb store.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreUnavailableError } from '../../common/errors.js';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { createEtcdStore } from '../../management-node/src/store/etcd-store.js';
import { MAX_TXN_OPS, rangeAll, type KeyValue, type Store, type StoreOp } from '../../management-node/src/store/store.js';
import { freePort, startEtcd, tempDir, type EtcdHandle } from '../support/etcd.js';

interface Opened {
  store: Store;
  dispose(): Promise<void>;
}
type Factory = () => Promise<Opened>;

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));
const put = (key: string, value: string | Uint8Array): StoreOp => ({ key, value: typeof value === 'string' ? enc(value) : value });
const del = (key: string): StoreOp => ({ key, value: null });
const keysOf = (kvs: KeyValue[]) => kvs.map((kv) => kv.key);
const byteOrder = (keys: string[]) => [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

/** Commits ops in batches of at most MAX_TXN_OPS. */
async function commitAll(store: Store, ops: StoreOp[]): Promise<void> {
  for (let i = 0; i < ops.length; i += MAX_TXN_OPS) await store.commit(ops.slice(i, i + MAX_TXN_OPS));
}

async function collect(iter: AsyncIterable<KeyValue>): Promise<KeyValue[]> {
  const out: KeyValue[] = [];
  for await (const kv of iter) out.push(kv);
  return out;
}

function storeContract(factory: Factory): void {
  let opened: Opened | undefined;
  let store: Store;

  beforeEach(async () => {
    opened = await factory();
    store = opened.store;
  });
  afterEach(async () => {
    await opened?.dispose();
    opened = undefined;
  });

  it('get of a missing key is undefined', async () => {
    expect(await store.get('tasks/missing')).to.equal(undefined);
  });

  it('commit puts, then get returns them', async () => {
    await store.commit([put('tasks/a', 'A'), put('tasks/b', 'B')]);
    expect(dec(await store.get('tasks/a'))).to.equal('A');
    expect(dec(await store.get('tasks/b'))).to.equal('B');
  });

  it('a later put overwrites', async () => {
    await store.commit([put('k', 'one')]);
    await store.commit([put('k', 'two')]);
    expect(dec(await store.get('k'))).to.equal('two');
  });

  it('commit deletes', async () => {
    await store.commit([put('tasks/a', 'A'), put('tasks/b', 'B')]);
    await store.commit([del('tasks/a')]);
    expect(await store.get('tasks/a')).to.equal(undefined);
    expect(dec(await store.get('tasks/b'))).to.equal('B');
    expect(keysOf(await store.range('tasks/'))).to.deep.equal(['tasks/b']);
  });

  it('deleting a missing key is fine', async () => {
    await store.commit([del('tasks/never')]);
    expect(await store.get('tasks/never')).to.equal(undefined);
  });

  it('an empty commit is a no-op', async () => {
    await store.commit([]);
    expect(await store.range('')).to.deep.equal([]);
  });

  it('mixed puts and deletes become visible together', async () => {
    await store.commit([put('tasks/1', 'old1'), put('tasks/2', 'old2'), put('workers/w', 'w')]);
    const batch = [del('tasks/1'), put('tasks/2', 'new2'), put('tasks/3', 'new3'), del('workers/w'), put('workers/x', 'x')];
    // Read concurrently with the commit: every read sees all of it or none of it.
    const snapshots: string[][] = [];
    const reading = (async () => {
      for (let i = 0; i < 20; i++) {
        const kvs = await store.range('');
        snapshots.push(kvs.map((kv) => `${kv.key}=${dec(kv.value)}`));
      }
    })();
    await store.commit(batch);
    await reading;
    const before = ['tasks/1=old1', 'tasks/2=old2', 'workers/w=w'];
    const after = ['tasks/2=new2', 'tasks/3=new3', 'workers/x=x'];
    for (const snap of snapshots) expect([before, after]).to.deep.include(snap);
    expect((await store.range('')).map((kv) => `${kv.key}=${dec(kv.value)}`)).to.deep.equal(after);
  });

  it('a commit breaking the contract is refused and changes nothing', async () => {
    await store.commit([put('k', 'v')]);
    await expectReject(store.commit([put('k', 'x'), put('k', 'y')]), /appears twice/);
    const tooMany = Array.from({ length: MAX_TXN_OPS + 1 }, (_, i) => put(`many/${i}`, 'v'));
    await expectReject(store.commit(tooMany), /at most 128/);
    expect(dec(await store.get('k'))).to.equal('v');
    expect(await store.range('many/')).to.deep.equal([]);
  });

  it(`a ${MAX_TXN_OPS}-op commit succeeds`, async () => {
    const ops = Array.from({ length: MAX_TXN_OPS }, (_, i) => put(`big/${String(i).padStart(3, '0')}`, `v${i}`));
    await store.commit(ops);
    const kvs = await store.range('big/');
    expect(kvs).to.have.length(MAX_TXN_OPS);
    expect(dec(kvs[127]!.value)).to.equal('v127');
  });

  it('range returns only keys with the prefix, in byte order', async () => {
    const inside = ['p/', 'p/a', 'p/a/b', 'p/a0', 'p/b', 'p/B', 'p/\u00e9', 'p/~', 'p/0', 'p/a.b'];
    const outside = ['p', 'p.', 'p0', 'o/zz', 'q/', 'P/a', 'pp/a'];
    await store.commit([...inside, ...outside].map((k) => put(k, k)));
    const kvs = await store.range('p/');
    expect(keysOf(kvs)).to.deep.equal(byteOrder(inside));
    for (const kv of kvs) expect(dec(kv.value)).to.equal(kv.key);
    expect(keysOf(await store.range('p/a'))).to.deep.equal(['p/a', 'p/a.b', 'p/a/b', 'p/a0']);
    expect(await store.range('nothing/')).to.deep.equal([]);
    expect(keysOf(await store.range(''))).to.deep.equal(byteOrder([...inside, ...outside]));
  });

  it('range honours limit and after', async () => {
    await store.commit(['s/1', 't/1', 't/2', 't/3', 't/4', 'u/1'].map((k) => put(k, k)));
    expect(keysOf(await store.range('t/', { limit: 2 }))).to.deep.equal(['t/1', 't/2']);
    expect(keysOf(await store.range('t/', { after: 't/2', limit: 2 }))).to.deep.equal(['t/3', 't/4']);
    expect(keysOf(await store.range('t/', { after: 't/2' }))).to.deep.equal(['t/3', 't/4']);
    // `after` need not be a stored key.
    expect(keysOf(await store.range('t/', { after: 't/25' }))).to.deep.equal(['t/3', 't/4']);
    expect(await store.range('t/', { after: 't/4' })).to.deep.equal([]);
    // An `after` before the prefix does not widen the range; one past it empties it.
    expect(keysOf(await store.range('t/', { after: 'a' }))).to.deep.equal(['t/1', 't/2', 't/3', 't/4']);
    expect(await store.range('t/', { after: 'u/' })).to.deep.equal([]);
  });

  it('paging with limit and after walks 2,500 keys exactly once', async function () {
    this.timeout(120_000);
    const keys = Array.from({ length: 2500 }, (_, i) => `tasks/${String(i).padStart(5, '0')}`);
    // Shuffle so commit order is not key order.
    const shuffled = [...keys].sort(() => Math.random() - 0.5);
    await commitAll(store, [...shuffled.map((k) => put(k, `v-${k}`)), put('tasksx', 'x'), put('taskr/1', 'r')]);

    const all = await collect(rangeAll(store, 'tasks/', 1000));
    expect(keysOf(all)).to.deep.equal(keys);
    for (const kv of all) expect(dec(kv.value)).to.equal(`v-${kv.key}`);

    // A page size that does not divide the total, walked by hand.
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await store.range('tasks/', after === undefined ? { limit: 333 } : { after, limit: 333 });
      pages++;
      seen.push(...keysOf(page));
      if (page.length < 333) break;
      after = page[page.length - 1]!.key;
    }
    expect(pages).to.equal(Math.ceil(2500 / 333));
    expect(seen).to.deep.equal(keys);
    // A page size that divides it exactly ends with an empty page.
    expect(await collect(rangeAll(store, 'tasks/', 500))).to.have.length(2500);
  });

  it('values round-trip byte-exact', async () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const edges = Uint8Array.from([0x00, 0xff, 0x00, 0x00, 0xff, 0xff, 0x80, 0x7f, 0x00]);
    const random = new Uint8Array(randomBytes(64 * 1024));
    // A view into a larger buffer: only the view's bytes are stored.
    const backing = Uint8Array.from([9, 9, 9, 0x00, 0xff, 0x01, 9, 9]);
    const view = backing.subarray(3, 6);
    await store.commit([put('v/all', all), put('v/edges', edges), put('v/random', random), put('v/view', view), put('v/empty', new Uint8Array(0))]);
    expect(Buffer.from((await store.get('v/all'))!).equals(Buffer.from(all))).to.equal(true);
    expect(Buffer.from((await store.get('v/edges'))!).equals(Buffer.from(edges))).to.equal(true);
    expect(Buffer.from((await store.get('v/random'))!).equals(Buffer.from(random))).to.equal(true);
    expect([...(await store.get('v/view'))!]).to.deep.equal([0x00, 0xff, 0x01]);
    const empty = await store.get('v/empty');
    expect(empty).to.be.instanceOf(Uint8Array);
    expect(empty).to.have.length(0);
    const ranged = await store.range('v/');
    expect(Buffer.from(ranged.find((kv) => kv.key === 'v/edges')!.value).equals(Buffer.from(edges))).to.equal(true);
  });

  it('returned values are the caller\'s to keep', async () => {
    await store.commit([put('a', 'first'), put('b', 'second')]);
    const a = (await store.get('a'))!;
    const ranged = await store.range('');
    await store.commit([put('a', 'other'), put('b', 'other!')]);
    await store.get('b');
    expect(dec(a)).to.equal('first');
    expect(ranged.map((kv) => dec(kv.value))).to.deep.equal(['first', 'second']);
  });

  it('a value changed by the caller after commit is not changed in the store', async () => {
    const value = enc('original');
    const done = store.commit([put('m', value)]);
    value.fill(0x21);
    await done;
    expect(dec(await store.get('m'))).to.equal('original');
  });

  it('has a description', () => {
    expect(store.description).to.be.a('string').and.not.equal('');
  });
}

async function expectReject(promise: Promise<unknown>, message: RegExp): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(Error);
    expect((err as Error).message).to.match(message);
    return err as Error;
  }
  expect.fail(`expected a rejection matching ${message}`);
}

let prefixCounter = 0;
const uniquePrefix = () => `/conformance-${process.pid}-${++prefixCounter}-${randomBytes(3).toString('hex')}/`;

describe('Store contract', function () {
  this.timeout(60_000);

  describe('etcd store', () => {
    let etcd: EtcdHandle;
    before(async () => {
      etcd = await startEtcd();
    });
    after(async () => {
      await etcd?.stop();
    });

    storeContract(async () => {
      const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: uniquePrefix() });
      return { store, dispose: () => store.close() };
    });

    it('stores with different prefixes on one etcd do not see each other', async () => {
      const a = createEtcdStore({ endpoints: [etcd.endpoint], prefix: '/iso-a/' });
      const b = createEtcdStore({ endpoints: [etcd.endpoint], prefix: '/iso-a/x' });
      const c = createEtcdStore({ endpoints: [etcd.endpoint], prefix: '/iso-b/' });
      try {
        await a.commit([put('tasks/1', 'a1')]);
        await b.commit([put('tasks/1', 'b1')]);
        await c.commit([put('tasks/1', 'c1'), put('tasks/2', 'c2')]);
        expect(dec(await a.get('tasks/1'))).to.equal('a1');
        expect(dec(await b.get('tasks/1'))).to.equal('b1');
        expect(dec(await c.get('tasks/1'))).to.equal('c1');
        expect(await a.get('tasks/2')).to.equal(undefined);
        expect(keysOf(await a.range('tasks/'))).to.deep.equal(['tasks/1']);
        expect(keysOf(await b.range(''))).to.deep.equal(['tasks/1']);
        expect(keysOf(await c.range(''))).to.deep.equal(['tasks/1', 'tasks/2']);
        await c.commit([del('tasks/1')]);
        expect(dec(await a.get('tasks/1'))).to.equal('a1');
        // a's whole key space includes b's keys only as a's own "xtasks/1": the prefix is plain text.
        expect(keysOf(await a.range(''))).to.deep.equal(['tasks/1', 'xtasks/1']);
      } finally {
        await Promise.all([a.close(), b.close(), c.close()]);
      }
    });

    it('rejects with StoreUnavailableError naming the endpoint when nothing listens', async () => {
      const endpoint = `http://127.0.0.1:${await freePort()}`;
      const store = createEtcdStore({ endpoints: [endpoint], prefix: uniquePrefix() });
      try {
        const started = Date.now();
        const err = await expectReject(store.commit([put('k', 'v')]), /store unavailable/);
        expect(Date.now() - started).to.be.below(5000);
        expect(err).to.be.instanceOf(StoreUnavailableError);
        expect(err.message).to.include(endpoint);
        await expectReject(store.get('k'), /127\.0\.0\.1/);
        await expectReject(store.range(''), /127\.0\.0\.1/);
      } finally {
        await store.close();
      }
    });

    it('works again at once after etcd comes back from kill -9', async function () {
      this.timeout(30_000);
      const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: uniquePrefix() });
      try {
        await store.commit([put('k', 'before')]);
        await etcd.kill9();
        for (let i = 0; i < 4; i++) await expectReject(store.commit([put('k', 'during')]), /store unavailable/);
        await etcd.restart();
        expect(dec(await store.get('k'))).to.equal('before');
        await store.commit([put('k', 'after')]);
        expect(dec(await store.get('k'))).to.equal('after');
      } finally {
        await store.close();
      }
    });
  });

  describe('embedded store', () => {
    let dir: string;
    let n = 0;
    before(async () => {
      dir = await tempDir('sched-store-');
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    storeContract(async () => {
      const path = join(dir, `db-${++n}`);
      const store = createEmbeddedStore(path);
      return {
        store,
        dispose: async () => {
          await store.close();
          await rm(path, { recursive: true, force: true });
        },
      };
    });

    it('keeps its data across close and reopen', async () => {
      const path = join(dir, 'reopen');
      const first = createEmbeddedStore(path);
      await first.commit([put('tasks/1', Uint8Array.from([0, 255, 1])), put('tasks/2', 'two'), put('gone', 'x')]);
      await first.commit([del('gone')]);
      await first.close();
      const second = createEmbeddedStore(path);
      try {
        expect([...(await second.get('tasks/1'))!]).to.deep.equal([0, 255, 1]);
        expect(keysOf(await second.range(''))).to.deep.equal(['tasks/1', 'tasks/2']);
        expect(await second.get('gone')).to.equal(undefined);
      } finally {
        await second.close();
      }
    });
  });
});
