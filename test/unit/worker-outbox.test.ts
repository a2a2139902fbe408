import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, equals, toBinary } from '@bufbuild/protobuf';
import { FinishedSchema, type Finished } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { Executor, REAPED_ERROR } from '../../worker-node/src/executor.js';
import { JOURNAL, Outbox, pendingOnDisk, toFinished } from '../../worker-node/src/outbox.js';

const finished = (taskId: string, attempt: number, exitCode = 0): Finished =>
  create(FinishedSchema, {
    task: { taskId, attempt },
    exitCode,
    startedUnixMs: 1_700_000_000_000n,
    finishedUnixMs: 1_700_000_000_500n,
    stdoutTail: Buffer.from('out\n'),
    pid: 42,
  });

describe('worker outbox', function () {
  let dir: string;
  let outboxDir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'worker-outbox-'));
    outboxDir = join(dir, 'outbox');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps results across a restart until they are acknowledged', async () => {
    const box = new Outbox(dir);
    const a = finished('build-1', 1, 3);
    const b = finished('build.2', 7);
    await Promise.all([box.add(a), box.add(b)]);
    expect(readdirSync(outboxDir)).to.deep.equal([JOURNAL]);
    expect([...pendingOnDisk(outboxDir)].sort()).to.deep.equal(['build-1.1', 'build.2.7']);
    expect(box.size).to.equal(2);

    // A new instance on the same directory plays the restarted worker.
    const restarted = new Outbox(dir);
    expect(restarted.size).to.equal(2);
    expect(restarted.skipped).to.deep.equal([]);
    expect(equals(FinishedSchema, restarted.get('build-1', 1)!, a)).to.equal(true);
    expect(equals(FinishedSchema, restarted.get('build.2', 7)!, b)).to.equal(true);
    expect(restarted.all().map((f) => f.task!.taskId).sort()).to.deep.equal(['build-1', 'build.2']);

    expect(restarted.ack('build-1', 1)).to.equal(true);
    expect(restarted.ack('build-1', 1)).to.equal(false); // a repeated ack is harmless
    expect(restarted.ack('build.2', 6)).to.equal(false); // another attempt is not this one
    expect(restarted.all().map((f) => f.task!.taskId)).to.deep.equal(['build.2']);
    // An ack is not written: a result resent after a restart is acknowledged again, not stored twice.
    // Once nothing is pending, the journal is emptied.
    expect(restarted.ack('build.2', 7)).to.equal(true);
    expect(pendingOnDisk(outboxDir).size).to.equal(0);
    expect(new Outbox(dir).size).to.equal(0);
  });

  it('keeps the journal until its last result is acknowledged, then empties it', async () => {
    const box = new Outbox(dir);
    const results = Array.from({ length: 50 }, (_, i) => finished(`t${i}`, 1));
    await Promise.all(results.map((f) => box.add(f)));
    expect(pendingOnDisk(outboxDir).size).to.equal(50);
    const size = statSync(join(outboxDir, JOURNAL)).size;
    for (let i = 0; i < 49; i++) box.ack(`t${i}`, 1);
    expect(statSync(join(outboxDir, JOURNAL)).size).to.equal(size); // one still pending
    box.ack('t49', 1);
    expect(statSync(join(outboxDir, JOURNAL)).size).to.equal(0);
    expect(new Outbox(dir).size).to.equal(0);
  });

  it('rewrites the journal with only what is pending once it has grown past it', async () => {
    const box = new Outbox(dir);
    const big = (i: number) => create(FinishedSchema, { ...finished(`big${i}`, 1), stdoutTail: Buffer.alloc(4096, 0x61), stderrTail: Buffer.alloc(4096, 0x62) });
    await box.add(finished('keep', 1)); // pending throughout, so the journal is never simply emptied
    for (let i = 0; i < 300; i++) {
      await box.add(big(i));
      box.ack(`big${i}`, 1);
    }
    // 300 results of 8 KiB (2.4 MiB) went through; the journal holds about what is pending, not their history.
    expect(statSync(join(outboxDir, JOURNAL)).size).to.be.below(1.5 * 1024 * 1024);
    expect([...pendingOnDisk(outboxDir)]).to.include('keep.1');
    // A restart resends what the journal holds (acked ones since the last rewrite are acknowledged again), not the whole history.
    const again = new Outbox(dir).all().map((f) => f.task!.taskId);
    expect(again[0]).to.equal('keep');
    expect(again.length).to.be.below(200);
  });

  it('is in the index at once and on disk when add() resolves', async () => {
    const box = new Outbox(dir);
    const saving = box.add(finished('t1', 1));
    expect(box.has('t1', 1)).to.equal(true);
    await saving;
    expect(pendingOnDisk(outboxDir).has('t1.1')).to.equal(true);
    expect(readdirSync(outboxDir).filter((n) => n.endsWith('.tmp'))).to.deep.equal([]);
  });

  it('leaves nothing pending on disk when the ack comes before the write is done', async () => {
    const box = new Outbox(dir);
    const saving = box.add(finished('t1', 1));
    expect(box.ack('t1', 1)).to.equal(true);
    await saving;
    await box.flush();
    expect(pendingOnDisk(outboxDir).size).to.equal(0);
    expect(new Outbox(dir).size).to.equal(0);
  });

  it('sets a torn or damaged journal tail aside on startup and keeps the whole records before it', async () => {
    const box = new Outbox(dir);
    await box.add(finished('good', 1));
    await box.add(finished('second', 1));
    const path = join(outboxDir, JOURNAL);
    const whole = readFileSync(path);
    // A crash in the middle of an append: the second record is cut short.
    writeFileSync(path, whole.subarray(0, whole.length - 3));
    const restarted = new Outbox(dir);
    expect(restarted.all().map((f) => f.task!.taskId)).to.deep.equal(['good']);
    expect(restarted.skipped).to.have.length(1);
    expect(readdirSync(outboxDir).filter((n) => n.endsWith('.bad'))).to.deep.equal(restarted.skipped);
    // Set aside once: the journal now holds whole records only.
    expect(new Outbox(dir).skipped).to.deep.equal([]);
    // A flipped byte fails the record's checksum.
    const damaged = readFileSync(path);
    damaged[damaged.length - 1] = damaged[damaged.length - 1]! ^ 0xff;
    writeFileSync(path, damaged);
    expect(new Outbox(dir).size).to.equal(0);
  });

  it('takes over the results an earlier version left one file each, and sets unreadable ones aside', async () => {
    mkdirSync(outboxDir, { recursive: true });
    writeFileSync(join(outboxDir, 'good.1.bin'), toBinary(FinishedSchema, finished('good', 1)));
    writeFileSync(join(outboxDir, 'torn.1.bin.tmp'), Buffer.from([0x0a, 0x05]));
    writeFileSync(join(outboxDir, 'garbage.1.bin'), Buffer.from([0xff, 0xff, 0xff]));
    writeFileSync(join(outboxDir, 'empty.1.bin'), Buffer.alloc(0)); // parses, but names no task
    writeFileSync(join(outboxDir, 'renamed.1.bin'), toBinary(FinishedSchema, finished('other', 1)));
    const box = new Outbox(dir);
    expect(box.all().map((f) => f.task!.taskId)).to.deep.equal(['good']);
    expect(box.skipped.sort()).to.deep.equal(['empty.1.bin', 'garbage.1.bin', 'renamed.1.bin']);
    expect(readdirSync(outboxDir).sort()).to.deep.equal(['empty.1.bin.bad', 'garbage.1.bin.bad', 'renamed.1.bin.bad', JOURNAL].sort());
    expect([...pendingOnDisk(outboxDir)]).to.deep.equal(['good.1']);
    expect(new Outbox(dir).skipped).to.deep.equal([]);
  });

  it('refuses a task id that would name another path', async () => {
    const box = new Outbox(dir);
    let error: unknown;
    await box.add(finished('../escape', 1)).catch((err: unknown) => (error = err));
    expect(String(error)).to.match(/task_id/);
    expect(box.size).to.equal(0);
    expect(existsSync(join(dir, 'escape.1.bin'))).to.equal(false);
    expect(pendingOnDisk(outboxDir).size).to.equal(0);
  });

  it('lets a real result win over a guessed one', async () => {
    const box = new Outbox(dir);
    await box.add(finished('t1', 2, 5));
    expect(await box.addIfAbsent(finished('t1', 2, 137))).to.equal(false);
    expect(await box.addIfAbsent(finished('t1', 3, 137))).to.equal(true);
    expect(new Outbox(dir).get('t1', 2)!.exitCode).to.equal(5);
    expect(new Outbox(dir).get('t1', 3)!.exitCode).to.equal(137);
  });

  it('records a task killed by a restarted worker as a Finished with the reason', async () => {
    const workerId = randomUUID();
    const crashed = new Executor({ dataDir: dir, workerId });
    crashed.start('orphan', 4, { argv: ['sh', '-c', 'echo started; exec sleep 30'] });
    const pid = crashed.get('orphan')!.pid;
    const waited = crashed.wait('orphan', 4);
    try {
      // Wait until it runs and has written its output.
      const deadline = Date.now() + 5000;
      while (!readFileSync(crashed.logPaths('orphan', 4).stdout, 'utf8').includes('started')) {
        if (Date.now() > deadline) throw new Error('task did not start');
        await new Promise((r) => setTimeout(r, 20));
      }
      // What main.ts does on startup: reap, and keep each killed attempt's end.
      const reaped = new Executor({ dataDir: dir, workerId }).reapOrphans();
      const box = new Outbox(dir);
      for (const r of reaped.results) await box.addIfAbsent(toFinished(r));
    } finally {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // reaped
      }
    }
    await waited;
    const f = new Outbox(dir).get('orphan', 4)!;
    expect(f).to.not.equal(undefined);
    expect(f.error).to.equal(REAPED_ERROR);
    // Not a result of the task: the manager retries it per its policy instead of storing it as done.
    expect(f.lost).to.equal(true);
    expect(f.startFailed).to.equal(false);
    expect(f.signal).to.equal('SIGKILL');
    expect(f.exitCode).to.equal(137);
    expect(f.pid).to.equal(pid);
    expect(Buffer.from(f.stdoutTail).toString()).to.equal('started\n');
  });

  it('carries start_failed and lost into the Finished message and through a restart', async () => {
    const base = { attempt: 1, pid: 0, exitCode: 127, signal: '', error: 'spawn x ENOENT', startedUnixMs: 1, finishedUnixMs: 2, stdoutTail: new Uint8Array(0), stderrTail: new Uint8Array(0) };
    const box = new Outbox(dir);
    await box.add(toFinished({ ...base, taskId: 'never', startFailed: true }));
    await box.add(toFinished({ ...base, taskId: 'gone', exitCode: 137, signal: 'SIGKILL', lost: true }));
    await box.add(toFinished({ ...base, taskId: 'plain', exitCode: 0 }));
    const again = new Outbox(dir);
    expect(again.get('never', 1)).to.include({ startFailed: true, lost: false, exitCode: 127, pid: 0, error: 'spawn x ENOENT' });
    expect(again.get('gone', 1)).to.include({ startFailed: false, lost: true, exitCode: 137 });
    expect(again.get('plain', 1)).to.include({ startFailed: false, lost: false });
  });

  it('keeps its directory 0700 and its files 0600 whatever the umask', async () => {
    const old = process.umask(0);
    try {
      mkdirSync(outboxDir, { mode: 0o755 });
      const box = new Outbox(dir);
      expect(statSync(outboxDir).mode & 0o777).to.equal(0o700);
      expect(statSync(dir).mode & 0o777).to.equal(0o700);
      process.umask(0o277); // would make a new file 0400
      await box.add(finished('t1', 1));
      expect(statSync(join(outboxDir, JOURNAL)).mode & 0o777).to.equal(0o600);
    } finally {
      process.umask(old);
    }
  });
});
