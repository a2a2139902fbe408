// One Store contract, run against a real etcd and the embedded lmdb store.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { StoreUnavailableError } from '../../common/errors.js';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { createEtcdStore } from '../../management-node/src/store/etcd-store.js';
import {
  MAX_TXN_OPS,
  rangeAll,
  type KeyValue,
  type Store,
  type StoreOp,
  type WatchEvent,
} from '../../management-node/src/store/store.js';
import { freePort, startEtcd, tempDir, type EtcdHandle } from '../support/etcd.js';

interface Opened {
  store: Store;
  /** Another store over the same data (for embedded: call only after store.close()); dispose closes it. */
  reopen(): Store;
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

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until check() is true; fails after timeoutMs (the event never came: a generous bound, not a speed limit). */
async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) expect.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A watch's events as "put key=value" / "delete key" lines, plus the raw events. */
function recorder() {
  const events: WatchEvent[] = [];
  return {
    events,
    onEvent: (e: WatchEvent) => events.push(e),
    lines: () => events.map((e) => (e.type === 'put' ? `put ${e.key}=${dec(e.value)}` : `delete ${e.key}`)),
  };
}

const STORE_MODULES = {
  embedded: new URL('../../management-node/src/store/embedded-store.js', import.meta.url).href,
  etcd: new URL('../../management-node/src/store/etcd-store.js', import.meta.url).href,
};

/** What a child script prints once it has closed its store: from then on it must exit by itself. */
const CLOSED_MARKER = 'store closed';

/**
 * Runs an ES module snippet in a fresh Node (with tsx, like mocha) and
 * resolves with its exit code, or null if it was killed: when it had not
 * exited timeoutMs after it started, or lingerMs after it printed
 * CLOSED_MARKER (lingered says which).
 */
function runChild(code: string, timeoutMs: number, lingerMs = 10_000): Promise<{ code: number | null; lingered: boolean; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    let lingered = false;
    let lingerTimer: NodeJS.Timeout | undefined;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (lingerTimer === undefined && stdout.includes(CLOSED_MARKER)) {
        lingerTimer = setTimeout(() => {
          lingered = true;
          child.kill('SIGKILL');
        }, lingerMs);
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (exitCode) => {
      clearTimeout(timer);
      clearTimeout(lingerTimer);
      resolve({ code: exitCode, lingered, stderr });
    });
  });
}

/**
 * A child script that opens a store with openExpr, exercises commit, txn,
 * watch and a lease, then closes it and returns from the module: the process
 * must then exit by itself, with nothing (timer, socket, keep-alive) left.
 */
function closeLeavesNothingScript(importLine: string, openExpr: string): string {
  return `${importLine}
const enc = (s) => new TextEncoder().encode(s);
const store = ${openExpr};
await store.commit([{ key: 'h/a', value: enc('1') }]);
const got = await store.getWithRevision('h/a');
await store.txn({ compare: [{ key: 'h/a', modRevision: got.modRevision }], ops: [{ key: 'h/b', value: enc('2') }] });
let seen = 0;
await store.watch('h/', () => seen++);
await store.watch('other/', () => {});
const lease = await store.grantLease(2000);
await lease.put('h/leased', enc('x'));
const revoked = await store.grantLease(2000);
await revoked.put('h/gone', enc('y'));
await revoked.revoke();
const cancel = await store.watch('h/', () => {});
await cancel();
await store.commit([{ key: 'h/c', value: enc('3') }]);
const deadline = Date.now() + 15000;
while (seen < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
if (seen < 4) { console.error('watch saw ' + seen + ' events'); process.exit(3); }
await store.close();
process.stdout.write(${JSON.stringify(CLOSED_MARKER + '\n')});
`;
}

/**
 * A child script that opens a store, attaches a key to a lease and exits
 * without revoking or closing, as a crash would.
 */
function crashWithLeaseScript(importLine: string, openExpr: string, ttlMs: number): string {
  return `${importLine}
const store = ${openExpr};
const lease = await store.grantLease(${ttlMs});
await lease.put('crash/leased', new TextEncoder().encode('x'));
await store.commit([{ key: 'crash/plain', value: new TextEncoder().encode('y') }]);
process.exit(0);
`;
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

  it('keys carry a modRevision that grows across commits and is shared by one txn', async () => {
    expect(await store.getWithRevision('r/a')).to.equal(undefined);
    await store.commit([put('r/a', 'a1'), put('r/b', 'b1')]);
    const a1 = (await store.getWithRevision('r/a'))!;
    const b1 = (await store.getWithRevision('r/b'))!;
    expect(a1.key).to.equal('r/a');
    expect(dec(a1.value)).to.equal('a1');
    expect(a1.modRevision > 0n).to.equal(true);
    expect(b1.modRevision).to.equal(a1.modRevision);

    await store.commit([put('r/b', 'b2')]);
    const b2 = (await store.getWithRevision('r/b'))!;
    expect(b2.modRevision > b1.modRevision).to.equal(true);
    expect((await store.getWithRevision('r/a'))!.modRevision).to.equal(a1.modRevision);
    const ranged = await store.range('r/');
    expect(ranged.map((kv) => [kv.key, dec(kv.value), kv.modRevision])).to.deep.equal([
      ['r/a', 'a1', a1.modRevision],
      ['r/b', 'b2', b2.modRevision],
    ]);

    await store.commit([del('r/a')]);
    expect(await store.getWithRevision('r/a')).to.equal(undefined);
    await store.commit([put('r/a', 'a3')]);
    expect((await store.getWithRevision('r/a'))!.modRevision > b2.modRevision).to.equal(true);
  });

  it('commit resolves with the revision of its txn; one that changes nothing, and a txn without ops, with the current one', async () => {
    // The manager's event history (events.ts) numbers each change by the revision commit resolves with.
    const first = await store.commit([put('cr/a', 'a'), put('cr/b', 'b')]);
    expect((await store.getWithRevision('cr/a'))!.modRevision).to.equal(first);
    expect((await store.getWithRevision('cr/b'))!.modRevision).to.equal(first);
    const second = await store.commit([put('cr/a', 'a2')]);
    expect(second > first).to.equal(true);
    expect((await store.getWithRevision('cr/a'))!.modRevision).to.equal(second);
    expect(await store.commit([del('cr/missing')])).to.equal(second);
    expect((await store.txn({ compare: [], ops: [] })).revision).to.equal(second);
    const seen: bigint[] = [];
    const cancel = await store.watch('cr/', (e) => seen.push(e.modRevision));
    const third = await store.commit([del('cr/b')]);
    await until(() => seen.length === 1, 'the delete seen');
    expect(seen).to.deep.equal([third]);
    await cancel();
  });

  it('txn applies its ops when every compare holds', async () => {
    await store.commit([put('t/a', 'a'), put('t/b', 'b')]);
    const a = (await store.getWithRevision('t/a'))!;
    const b = (await store.getWithRevision('t/b'))!;
    const res = await store.txn({
      compare: [
        { key: 't/a', modRevision: a.modRevision },
        { key: 't/b', modRevision: b.modRevision },
        { key: 't/new', modRevision: 0n },
      ],
      ops: [put('t/a', 'a2'), del('t/b'), put('t/new', 'n')],
    });
    expect(res.succeeded).to.equal(true);
    expect(res.revision > a.modRevision).to.equal(true);
    const a2 = (await store.getWithRevision('t/a'))!;
    expect(dec(a2.value)).to.equal('a2');
    expect(a2.modRevision).to.equal(res.revision);
    expect((await store.getWithRevision('t/new'))!.modRevision).to.equal(res.revision);
    expect(await store.get('t/b')).to.equal(undefined);
    // A txn without compares always applies.
    expect((await store.txn({ compare: [], ops: [put('t/c', 'c')] })).succeeded).to.equal(true);
    expect(dec(await store.get('t/c'))).to.equal('c');
  });

  it('txn with a stale compare fails and changes nothing', async () => {
    await store.commit([put('s/a', 'a1'), put('s/b', 'b1')]);
    const stale = (await store.getWithRevision('s/a'))!.modRevision;
    await store.commit([put('s/a', 'a2')]);
    const current = (await store.getWithRevision('s/a'))!.modRevision;
    const before = await store.range('s/');
    const res = await store.txn({
      compare: [
        { key: 's/b', modRevision: (await store.getWithRevision('s/b'))!.modRevision },
        { key: 's/a', modRevision: stale },
      ],
      ops: [put('s/a', 'lost'), del('s/b'), put('s/c', 'lost')],
    });
    expect(res.succeeded).to.equal(false);
    expect(res.revision >= current).to.equal(true);
    expect(await store.range('s/')).to.deep.equal(before);
    // The same txn with the current revision goes through.
    const retry = await store.txn({ compare: [{ key: 's/a', modRevision: current }], ops: [put('s/a', 'a3')] });
    expect(retry.succeeded).to.equal(true);
    expect(dec(await store.get('s/a'))).to.equal('a3');
  });

  it('a compare with modRevision 0n means the key must not exist', async () => {
    const create = (value: string) => store.txn({ compare: [{ key: 'z/k', modRevision: 0n }], ops: [put('z/k', value)] });
    expect((await create('first')).succeeded).to.equal(true);
    expect((await create('second')).succeeded).to.equal(false);
    expect(dec(await store.get('z/k'))).to.equal('first');
    // A compare on an existing key's real revision is not "absent".
    const rev = (await store.getWithRevision('z/k'))!.modRevision;
    expect((await store.txn({ compare: [{ key: 'z/k', modRevision: rev }], ops: [] })).succeeded).to.equal(true);
    // And a missing key never has a real revision.
    expect((await store.txn({ compare: [{ key: 'z/missing', modRevision: rev }], ops: [put('z/x', 'x')] })).succeeded).to.equal(false);
    expect(await store.get('z/x')).to.equal(undefined);
    await store.commit([del('z/k')]);
    expect((await create('third')).succeeded).to.equal(true);
    expect(dec(await store.get('z/k'))).to.equal('third');
  });

  it('of concurrent txns comparing the same revision, exactly one wins', async () => {
    for (let round = 0; round < 5; round++) {
      await store.commit([put('c/k', `base${round}`)]);
      const rev = (await store.getWithRevision('c/k'))!.modRevision;
      const contenders = Array.from({ length: 4 }, (_, i) =>
        store.txn({ compare: [{ key: 'c/k', modRevision: rev }], ops: [put('c/k', `r${round}-w${i}`), put(`c/w${i}`, 'won')] }),
      );
      const results = await Promise.all(contenders);
      const winners = results.flatMap((r, i) => (r.succeeded ? [i] : []));
      expect(winners).to.have.length(1);
      expect(dec(await store.get('c/k'))).to.equal(`r${round}-w${winners[0]}`);
      expect(keysOf(await store.range('c/w'))).to.deep.equal([`c/w${winners[0]}`]);
      await store.commit([del(`c/w${winners[0]}`)]);
      // Creating a missing key races the same way.
      const creators = await Promise.all(
        [0, 1, 2].map((i) => store.txn({ compare: [{ key: `c/new${round}`, modRevision: 0n }], ops: [put(`c/new${round}`, `${i}`)] })),
      );
      expect(creators.filter((r) => r.succeeded)).to.have.length(1);
    }
  });

  it('txn is checked like commit', async () => {
    await expectReject(store.txn({ compare: [], ops: [put('k', 'x'), put('k', 'y')] }), /appears twice/);
    const tooMany = Array.from({ length: MAX_TXN_OPS + 1 }, (_, i) => put(`many/${i}`, 'v'));
    await expectReject(store.txn({ compare: [], ops: tooMany }), /at most 128/);
    const compares = Array.from({ length: MAX_TXN_OPS + 1 }, (_, i) => ({ key: `many/${i}`, modRevision: 0n }));
    await expectReject(store.txn({ compare: compares, ops: [put('k', 'v')] }), /at most 128/);
    expect(await store.range('')).to.deep.equal([]);
  });

  it('watch sees the puts and deletes under its prefix, in order, and nothing after cancel', async () => {
    await store.commit([put('w/before', 'old')]);
    const rec = recorder();
    const cancel = await store.watch('w/', rec.onEvent);
    await store.commit([put('w/a', '1'), put('x/a', 'no'), put('w', 'no'), put('wx/a', 'no')]);
    await store.commit([put('w/c', '2'), del('w/a'), put('w/b', '3'), del('w/missing'), del('x/a')]);
    await store.commit([del('w/never')]);
    const rev = (await store.getWithRevision('w/c'))!.modRevision;
    expect((await store.txn({ compare: [{ key: 'w/c', modRevision: 0n }], ops: [put('w/c', 'failed')] })).succeeded).to.equal(false);
    await store.txn({ compare: [{ key: 'w/c', modRevision: rev }], ops: [put('w/c', '4'), del('w/before')] });
    await until(() => rec.events.length >= 6, 'six watch events');
    expect(rec.lines()).to.deep.equal(['put w/a=1', 'put w/c=2', 'delete w/a', 'put w/b=3', 'put w/c=4', 'delete w/before']);
    const revs = rec.events.map((e) => e.modRevision);
    expect(revs[1]).to.equal(rev);
    expect(revs[1]).to.equal(revs[2]).and.equal(revs[3]);
    expect(revs[4]).to.equal(revs[5]);
    expect(revs[0]! < revs[1]! && revs[3]! < revs[4]!).to.equal(true);
    expect(rec.events[4]!.modRevision).to.equal((await store.getWithRevision('w/c'))!.modRevision);

    await cancel();
    // A second watch proves the next commit was delivered; the cancelled one must not have seen it.
    const sentinel = recorder();
    const cancelSentinel = await store.watch('w/', sentinel.onEvent);
    await store.commit([put('w/late', 'x')]);
    await until(() => sentinel.events.length >= 1, 'the sentinel watch');
    expect(sentinel.lines()).to.deep.equal(['put w/late=x']);
    expect(rec.events).to.have.length(6);
    await cancelSentinel();
    await cancel(); // idempotent
  });

  it('watches of different prefixes each see their own keys; an empty prefix sees all', async () => {
    const a = recorder();
    const b = recorder();
    const all = recorder();
    const cancels = await Promise.all([store.watch('a/', a.onEvent), store.watch('b/', b.onEvent), store.watch('', all.onEvent)]);
    await store.commit([put('a/1', 'x'), put('b/1', 'y')]);
    await store.commit([del('a/1'), put('c/1', 'z')]);
    // Each watch has its own order; etcd may deliver one watch's events before another's.
    await until(() => a.events.length >= 2 && b.events.length >= 1 && all.events.length >= 4, 'the events of all three');
    expect(a.lines()).to.deep.equal(['put a/1=x', 'delete a/1']);
    expect(b.lines()).to.deep.equal(['put b/1=y']);
    expect(all.lines()).to.deep.equal(['put a/1=x', 'put b/1=y', 'delete a/1', 'put c/1=z']);
    await Promise.all(cancels.map((cancel) => cancel()));
  });

  it('a watch value is the watcher\'s to keep', async () => {
    const rec = recorder();
    const cancel = await store.watch('v/', rec.onEvent);
    const value = enc('original');
    await store.commit([put('v/k', value)]);
    value.fill(0x21);
    await until(() => rec.events.length >= 1, 'the put');
    expect(rec.lines()).to.deep.equal(['put v/k=original']);
    await cancel();
  });

  it('a lease\'s keys are deleted when it is revoked, and watches see it', async () => {
    const lease = await store.grantLease(2000);
    expect(lease.id).to.be.a('string').and.not.equal('');
    await lease.put('l/a', enc('A'));
    await lease.put('l/b', enc('B'));
    await store.commit([put('l/plain', 'P')]);
    expect(dec(await store.get('l/a'))).to.equal('A');
    const rec = recorder();
    const cancel = await store.watch('l/', rec.onEvent);
    await lease.revoke();
    expect(await store.get('l/a')).to.equal(undefined);
    expect(await store.get('l/b')).to.equal(undefined);
    expect(dec(await store.get('l/plain'))).to.equal('P');
    await until(() => rec.events.length >= 2, 'two deletes');
    expect(rec.lines().sort()).to.deep.equal(['delete l/a', 'delete l/b']);
    expect(rec.events[0]!.modRevision).to.equal(rec.events[1]!.modRevision);
    await expectReject(lease.put('l/c', enc('C')), /revoked/);
    expect(await store.get('l/c')).to.equal(undefined);
    await lease.revoke(); // idempotent
    await cancel();
  });

  it('a lease put has a modRevision, and a later plain put or another lease takes the key over', async () => {
    const one = await store.grantLease(2000);
    const two = await store.grantLease(2000);
    expect(one.id).to.not.equal(two.id);
    await one.put('m/plain-later', enc('1'));
    await one.put('m/moved', enc('1'));
    await one.put('m/kept', enc('1'));
    const rev = (await store.getWithRevision('m/kept'))!.modRevision;
    expect(rev > 0n).to.equal(true);
    await store.commit([put('m/plain-later', 'plain')]);
    await two.put('m/moved', enc('2'));
    expect((await store.getWithRevision('m/moved'))!.modRevision > rev).to.equal(true);
    await one.revoke();
    expect(keysOf(await store.range('m/'))).to.deep.equal(['m/moved', 'm/plain-later']);
    await two.revoke();
    expect(keysOf(await store.range('m/'))).to.deep.equal(['m/plain-later']);
  });

  it('a lease creates a key only if it does not exist, and the key goes with the lease (election)', async () => {
    const one = await store.grantLease(2000);
    const two = await store.grantLease(2000);
    const rev = await one.create('e/leader', enc('one'));
    expect(rev !== undefined && rev > 0n).to.equal(true);
    expect((await store.getWithRevision('e/leader'))!.modRevision).to.equal(rev);
    expect(await two.create('e/leader', enc('two'))).to.equal(undefined);
    expect(await one.create('e/leader', enc('again'))).to.equal(undefined); // exists, even for its own lease
    expect(dec(await store.get('e/leader'))).to.equal('one');
    // A write fenced on the leader key's revision passes while it holds it.
    expect((await store.txn({ compare: [{ key: 'e/leader', modRevision: rev! }], ops: [put('e/data', '1')] })).succeeded).to.equal(true);
    await one.revoke();
    expect(await store.get('e/leader')).to.equal(undefined);
    const next = await two.create('e/leader', enc('two'));
    expect(next !== undefined && next > rev!).to.equal(true);
    // The deposed holder's fence no longer holds: its write changes nothing.
    expect((await store.txn({ compare: [{ key: 'e/leader', modRevision: rev! }], ops: [put('e/data', 'stale')] })).succeeded).to.equal(false);
    expect(dec(await store.get('e/data'))).to.equal('1');
    await expectReject(one.create('e/other', enc('x')), /revoked/);
    await two.revoke();
  });

  it('a lease needs a positive TTL', async () => {
    await expectReject(store.grantLease(0), /TTL/);
    await expectReject(store.grantLease(-1), /TTL/);
  });

  it('close() revokes leases and ends watches', async () => {
    const lease = await store.grantLease(2000);
    await lease.put('e/leased', enc('x'));
    await store.commit([put('e/plain', 'y')]);
    const rec = recorder();
    await store.watch('e/', rec.onEvent);
    await store.close();
    const seen = rec.events.length;
    const again = opened!.reopen();
    expect(await again.get('e/leased')).to.equal(undefined);
    expect(dec(await again.get('e/plain'))).to.equal('y');
    // A watch on the reopened store proves the commit was delivered; the closed one must not have seen it.
    const sentinel = recorder();
    const cancelSentinel = await again.watch('e/', sentinel.onEvent);
    await again.commit([put('e/after', 'z')]);
    await until(() => sentinel.events.length >= 1, 'the sentinel watch');
    expect(sentinel.lines()).to.deep.equal(['put e/after=z']);
    expect(rec.events).to.have.length(seen);
    await cancelSentinel();
    await store.close(); // idempotent
  });

  it('has a description', () => {
    expect(store.description).to.be.a('string').and.not.equal('');
  });
}

/** Rejects with "<what>: did not happen within ms" unless promise settles first. */
function withinMs<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: did not happen within ${ms}ms`)), ms);
    promise.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e as Error)),
    );
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
      const prefix = uniquePrefix();
      const stores = [createEtcdStore({ endpoints: [etcd.endpoint], prefix })];
      return {
        store: stores[0]!,
        reopen: () => {
          const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix });
          stores.push(store);
          return store;
        },
        dispose: async () => {
          await Promise.all(stores.map((s) => s.close()));
        },
      };
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
        // It gives up (rather than retrying for ever) within a bound that only a hang would pass.
        const err = await expectReject(withinMs(20_000, 'the commit to give up', store.commit([put('k', 'v')])), /store unavailable/);
        expect(err).to.be.instanceOf(StoreUnavailableError);
        expect(err.message).to.include(endpoint);
        await expectReject(store.get('k'), /127\.0\.0\.1/);
        await expectReject(store.range(''), /127\.0\.0\.1/);
      } finally {
        await store.close();
      }
    });

    it('close() leaves nothing running: a process that closed its store exits by itself', async function () {
      this.timeout(60_000);
      const prefix = uniquePrefix();
      const script = closeLeavesNothingScript(
        `import { createEtcdStore } from ${JSON.stringify(STORE_MODULES.etcd)};`,
        `createEtcdStore({ endpoints: [${JSON.stringify(etcd.endpoint)}], prefix: ${JSON.stringify(prefix)} })`,
      );
      const { code, lingered, stderr } = await runChild(script, 50_000);
      expect(lingered, 'still running 10 s after closing its store: something was left open').to.equal(false);
      expect(code, stderr).to.equal(0);
      const check = createEtcdStore({ endpoints: [etcd.endpoint], prefix });
      try {
        // close() revoked the lease; the rest stays.
        expect(keysOf(await check.range('h/'))).to.deep.equal(['h/a', 'h/b', 'h/c']);
      } finally {
        await check.close();
      }
    });

    it('keys of a lease whose process died go after the TTL', async function () {
      this.timeout(60_000);
      const prefix = uniquePrefix();
      const script = crashWithLeaseScript(
        `import { createEtcdStore } from ${JSON.stringify(STORE_MODULES.etcd)};`,
        `createEtcdStore({ endpoints: [${JSON.stringify(etcd.endpoint)}], prefix: ${JSON.stringify(prefix)} })`,
        1000,
      );
      const { code, stderr } = await runChild(script, 50_000);
      expect(code, stderr).to.equal(0);
      const check = createEtcdStore({ endpoints: [etcd.endpoint], prefix });
      try {
        await until(async () => (await check.get('crash/leased')) === undefined, 'the leased key to expire');
        expect(dec(await check.get('crash/plain'))).to.equal('y');
      } finally {
        await check.close();
      }
    });

    it('a watch resumes after etcd comes back from kill -9, missing nothing', async function () {
      this.timeout(30_000);
      const prefix = uniquePrefix();
      const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix });
      const writer = createEtcdStore({ endpoints: [etcd.endpoint], prefix });
      const rec = recorder();
      const errors: Error[] = [];
      try {
        const cancel = await store.watch('k/', rec.onEvent, (err) => errors.push(err));
        await writer.commit([put('k/1', 'before')]);
        await until(() => rec.events.length >= 1, 'the first event');
        await etcd.kill9();
        await etcd.restart();
        await writer.commit([put('k/2', 'after')]);
        await writer.commit([del('k/1')]);
        await until(() => rec.events.length >= 3, 'events after the restart');
        expect(rec.lines()).to.deep.equal(['put k/1=before', 'put k/2=after', 'delete k/1']);
        expect(errors).to.deep.equal([]);
        await cancel();
      } finally {
        await Promise.all([store.close(), writer.close()]);
      }
    });

    it('watch and grantLease reject with StoreUnavailableError when nothing listens', async () => {
      const store = createEtcdStore({ endpoints: [`http://127.0.0.1:${await freePort()}`], prefix: uniquePrefix(), dialTimeoutMs: 500 });
      try {
        await expectReject(store.grantLease(2000), /store unavailable/);
        await expectReject(store.watch('', () => {}), /store unavailable/);
        await expectReject(store.txn({ compare: [], ops: [put('k', 'v')] }), /store unavailable/);
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
      const stores = [createEmbeddedStore(path)];
      return {
        store: stores[0]!,
        reopen: () => {
          const store = createEmbeddedStore(path);
          stores.push(store);
          return store;
        },
        dispose: async () => {
          for (const s of stores) await s.close();
          await rm(path, { recursive: true, force: true });
        },
      };
    });

    it('close() leaves nothing running: a process that closed its store exits by itself', async function () {
      this.timeout(60_000);
      const path = join(dir, 'child-close');
      const script = closeLeavesNothingScript(
        `import { createEmbeddedStore } from ${JSON.stringify(STORE_MODULES.embedded)};`,
        `createEmbeddedStore(${JSON.stringify(path)})`,
      );
      const { code, lingered, stderr } = await runChild(script, 50_000);
      expect(lingered, 'still running 10 s after closing its store: something was left open').to.equal(false);
      expect(code, stderr).to.equal(0);
      const check = createEmbeddedStore(path);
      try {
        expect(keysOf(await check.range('h/'))).to.deep.equal(['h/a', 'h/b', 'h/c']);
      } finally {
        await check.close();
      }
    });

    it('on open, deletes the keys of leases held by a process that died', async function () {
      this.timeout(60_000);
      const path = join(dir, 'child-crash');
      const script = crashWithLeaseScript(
        `import { createEmbeddedStore } from ${JSON.stringify(STORE_MODULES.embedded)};`,
        `createEmbeddedStore(${JSON.stringify(path)})`,
        1000,
      );
      const { code, stderr } = await runChild(script, 50_000);
      expect(code, stderr).to.equal(0);
      const check = createEmbeddedStore(path);
      try {
        expect(keysOf(await check.range('crash/'))).to.deep.equal(['crash/plain']);
        // The cleanup was a committed change: the revision moved past the plain key's.
        const plain = (await check.getWithRevision('crash/plain'))!;
        const res = await check.txn({ compare: [], ops: [put('crash/next', 'n')] });
        expect(res.revision).to.equal(plain.modRevision + 2n);
      } finally {
        await check.close();
      }
    });

    it('keeps its revision counter across close and reopen', async () => {
      const path = join(dir, 'reopen-rev');
      const first = createEmbeddedStore(path);
      await first.commit([put('a', '1')]);
      await first.commit([put('b', '2')]);
      const rev = (await first.getWithRevision('b'))!.modRevision;
      await first.close();
      const second = createEmbeddedStore(path);
      try {
        expect((await second.getWithRevision('b'))!.modRevision).to.equal(rev);
        const res = await second.txn({ compare: [{ key: 'b', modRevision: rev }], ops: [put('c', '3')] });
        expect(res).to.deep.equal({ succeeded: true, revision: rev + 1n });
      } finally {
        await second.close();
      }
    });

    it('opens a store written before revisions existed, giving every key modRevision 1', async () => {
      const path = join(dir, 'legacy');
      // The old layout: bare values under string keys, nothing else.
      const raw = openLmdb({ path, encoding: 'binary', keyEncoding: 'ordered-binary' });
      await raw.put('meta/schema', Buffer.from('1'));
      await raw.put('tasks/1', Buffer.from([0, 1, 2]));
      // Enough keys that rewriting them all splits pages.
      await raw.transaction(() => {
        for (let i = 0; i < 3000; i++) void raw.put(`zz/${String(i).padStart(4, '0')}`, Buffer.from(`v${i}`));
      });
      await raw.close();
      const store = createEmbeddedStore(path);
      try {
        const many = await collect(rangeAll(store, 'zz/'));
        expect(many).to.have.length(3000);
        many.forEach((kv, i) => expect([kv.key, dec(kv.value), kv.modRevision]).to.deep.equal([`zz/${String(i).padStart(4, '0')}`, `v${i}`, 1n]));
        expect(await store.range('', { limit: 2 })).to.deep.equal([
          { key: 'meta/schema', value: enc('1'), modRevision: 1n },
          { key: 'tasks/1', value: Uint8Array.from([0, 1, 2]), modRevision: 1n },
        ]);
        const res = await store.txn({ compare: [{ key: 'tasks/1', modRevision: 1n }], ops: [put('tasks/1', 'x')] });
        expect(res).to.deep.equal({ succeeded: true, revision: 2n });
      } finally {
        await store.close();
      }
      // Converted once: reopening does not convert again.
      const again = createEmbeddedStore(path);
      try {
        expect(dec(await again.get('tasks/1'))).to.equal('x');
        expect((await again.getWithRevision('tasks/1'))!.modRevision).to.equal(2n);
      } finally {
        await again.close();
      }
    });

    it('refuses to open a store of a newer format', async () => {
      const path = join(dir, 'future');
      const raw = openLmdb({ path, encoding: 'binary', keyEncoding: 'ordered-binary' });
      await raw.put([0, 'format'], Buffer.from('99'));
      await raw.put('tasks/1', Buffer.from('opaque'));
      await raw.close();
      expect(() => createEmbeddedStore(path)).to.throw(/format 99/);
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
