// Task log files on the worker: the capped sink, reading back (tail, follow,
// abort) and retention; and the redial backoff.
import { expect } from 'chai';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogBudget, LogSink, readLog, sweepLogs, TAIL_BYTES } from '../../worker-node/src/task-log.js';
import { redialDelay } from '../../worker-node/src/session.js';

describe('worker task logs', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sched-tasklog-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const collect = async (path: string, o: Partial<Parameters<typeof readLog>[1]> = {}) => {
    const chunks: Buffer[] = [];
    await readLog(path, { signal: new AbortController().signal, send: (d) => void chunks.push(Buffer.from(d)), ...o });
    return Buffer.concat(chunks).toString();
  };

  it('keeps the first maxBytes of a task\'s output (both streams), says it dropped the rest, and remembers the real tail', () => {
    const budget = new LogBudget(10);
    const out = new LogSink(join(dir, 'a.stdout'), budget);
    const err = new LogSink(join(dir, 'a.stderr'), budget);
    out.write(Buffer.from('0123'));
    err.write(Buffer.from('err'));
    out.write(Buffer.from('456789abc'));
    err.write(Buffer.from('more'));
    out.close();
    err.close();
    const marker = '\n[sched: output truncated: the task\'s logs reached their limit of 10 bytes]\n';
    expect(readFileSync(join(dir, 'a.stdout'), 'utf8')).to.equal(`0123456${marker}`);
    expect(readFileSync(join(dir, 'a.stderr'), 'utf8')).to.equal(`err${marker}`);
    expect(Buffer.from(out.tailBytes()).toString()).to.equal('0123456789abc');
    expect(Buffer.from(err.tailBytes()).toString()).to.equal('errmore');
    const long = new LogSink(join(dir, 'b.stdout'), new LogBudget(1 << 20));
    long.write(Buffer.alloc(TAIL_BYTES * 2, 'x'));
    long.write(Buffer.from('end'));
    long.close();
    const tail = Buffer.from(long.tailBytes()).toString();
    expect(tail).to.have.length(TAIL_BYTES);
    expect(tail.endsWith('xend')).to.equal(true);
  });

  it('reads a whole log, or its last lines, a final newline not counting as a line', async () => {
    const path = join(dir, 'l.stdout');
    writeFileSync(path, 'one\ntwo\nthree\n');
    expect(await collect(path)).to.equal('one\ntwo\nthree\n');
    expect(await collect(path, { tailLines: 2 })).to.equal('two\nthree\n');
    expect(await collect(path, { tailLines: 5 })).to.equal('one\ntwo\nthree\n');
    expect(await collect(path, { tailLines: 0 })).to.equal('');
    writeFileSync(path, 'no newline\nat the end');
    expect(await collect(path, { tailLines: 1 })).to.equal('at the end');
    // Lines longer than one read chunk.
    writeFileSync(path, `${'a'.repeat(100_000)}\n${'b'.repeat(70_000)}\n`);
    expect(await collect(path, { tailLines: 1 })).to.equal(`${'b'.repeat(70_000)}\n`);
  });

  it('follows a log until the attempt ends, reading what was written just before the end', async () => {
    const path = join(dir, 'f.stdout');
    writeFileSync(path, 'first\n');
    // follow() is asked before each read: the attempt writes more while it runs, and its last
    // output lands just before it ends; the reader must not miss that.
    let asked = 0;
    const follow = () => {
      asked++;
      if (asked === 2) appendFileSync(path, 'second\n');
      if (asked === 3) {
        appendFileSync(path, 'last\n');
        return false;
      }
      return true;
    };
    expect(await collect(path, { follow, pollMs: 1 })).to.equal('first\nsecond\nlast\n');
    expect(asked).to.equal(3);
  });

  it('an abort wakes a follower waiting for new output, however long its poll interval', async () => {
    const path = join(dir, 'g.stdout');
    writeFileSync(path, 'first\n');
    const ctl = new AbortController();
    // Abort as soon as the reader starts to wait (it listens for the abort then). With a poll
    // interval longer than the test's own timeout, only the abort can end the read.
    const listen = ctl.signal.addEventListener.bind(ctl.signal);
    ctl.signal.addEventListener = ((type: string, ...rest: unknown[]) => {
      (listen as (t: string, ...r: unknown[]) => void)(type, ...rest);
      if (type === 'abort') setImmediate(() => ctl.abort());
    }) as typeof ctl.signal.addEventListener;
    const sent: string[] = [];
    await readLog(path, { follow: () => true, pollMs: 3600_000, signal: ctl.signal, send: (d) => void sent.push(Buffer.from(d).toString()) });
    expect(ctl.signal.aborted).to.equal(true);
    expect(sent).to.deep.equal(['first\n']);
  });

  it('waits for a slow consumer: the next chunk is read only after send() settles', async () => {
    const path = join(dir, 'h.stdout');
    writeFileSync(path, Buffer.alloc(3 * 64 * 1024 + 10, 'y'));
    const releases: Array<() => void> = [];
    const sizes: number[] = [];
    const done = readLog(path, {
      signal: new AbortController().signal,
      send: (d) => {
        sizes.push(d.length);
        return new Promise<void>((resolve) => releases.push(resolve));
      },
    });
    for (let i = 1; i <= 4; i++) {
      while (releases.length < i) await new Promise((r) => setImmediate(r));
      for (let t = 0; t < 5; t++) await new Promise((r) => setImmediate(r));
      expect(sizes, 'one chunk in flight at a time').to.have.length(i);
      releases[i - 1]!();
    }
    await done;
    expect(sizes).to.deep.equal([65536, 65536, 65536, 10]);
  });

  it('rejects with ENOENT for a log that is not there', async () => {
    const err = await collect(join(dir, 'missing')).then(() => undefined, (e: NodeJS.ErrnoException) => e);
    expect(err?.code).to.equal('ENOENT');
  });

  it('removes logs older than the retention, except those of running attempts', () => {
    const old = Date.now() / 1000 - 7200;
    for (const name of ['t1.1.stdout', 't1.1.stderr', 't2.1.stdout', 't3.1.stdout']) writeFileSync(join(dir, name), 'x');
    for (const name of ['t1.1.stdout', 't1.1.stderr', 't2.1.stdout']) utimesSync(join(dir, name), old, old);
    expect(sweepLogs(dir, 3600_000, (f) => f.startsWith('t2.'))).to.equal(2);
    expect(['t1.1.stdout', 't1.1.stderr', 't2.1.stdout', 't3.1.stdout'].map((n) => existsSync(join(dir, n)))).to.deep.equal([false, false, true, true]);
  });
});

describe('worker redial backoff', () => {
  it('doubles from the base up to the cap, with 50-100% jitter', () => {
    const low = (n: number) => redialDelay(n, 200, 30_000, () => 0);
    const high = (n: number) => redialDelay(n, 200, 30_000, () => 1);
    expect([0, 1, 2, 3].map(high)).to.deep.equal([200, 400, 800, 1600]);
    expect([0, 1, 2, 3].map(low)).to.deep.equal([100, 200, 400, 800]);
    expect(high(20)).to.equal(30_000);
    expect(high(10_000)).to.equal(30_000);
    expect(low(20)).to.equal(15_000);
  });
});
