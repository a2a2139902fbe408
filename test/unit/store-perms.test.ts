// The embedded store holds every task's argv and env: its directory and lmdb
// files are the owner's alone whatever the umask, and are made so on open when
// they were left looser.
import { expect } from 'chai';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedStore, restrictMode } from '../../management-node/src/store/embedded-store.js';

const mode = (path: string): number => statSync(path).mode & 0o777;

describe('embedded store permissions', () => {
  let dir: string;
  let umask: number;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-perms-'));
    umask = process.umask(0o022);
  });
  afterEach(() => {
    process.umask(umask);
    rmSync(dir, { recursive: true, force: true });
  });

  async function openAndClose(path: string): Promise<void> {
    const store = createEmbeddedStore(path);
    await store.commit([{ key: 'k', value: new TextEncoder().encode('secret env') }]);
    await store.close();
  }

  it('creates the directory 0700 and the lmdb files 0600 under umask 022, parents included', async () => {
    const path = join(dir, 'data', 'manager');
    await openAndClose(path);
    expect(mode(join(dir, 'data'))).to.equal(0o700);
    expect(mode(path)).to.equal(0o700);
    expect(mode(join(path, 'data.mdb'))).to.equal(0o600);
    expect(mode(join(path, 'lock.mdb'))).to.equal(0o600);
  });

  it('tightens an existing directory and lmdb files left 0755 / 0644 / 0666', async () => {
    const path = join(dir, 'store');
    await openAndClose(path);
    chmodSync(path, 0o755);
    chmodSync(join(path, 'data.mdb'), 0o644);
    chmodSync(join(path, 'lock.mdb'), 0o666);
    const store = createEmbeddedStore(path);
    try {
      expect(mode(path)).to.equal(0o700);
      expect(mode(join(path, 'data.mdb'))).to.equal(0o600);
      expect(mode(join(path, 'lock.mdb'))).to.equal(0o600);
      // Still the same store.
      expect(new TextDecoder().decode(await store.get('k'))).to.equal('secret env');
    } finally {
      await store.close();
    }
  });

  it('tightens a directory made 0777 by someone else before the first open', async () => {
    const path = join(dir, 'premade');
    mkdirSync(path);
    chmodSync(path, 0o777);
    await openAndClose(path);
    expect(mode(path)).to.equal(0o700);
    expect(mode(join(path, 'data.mdb'))).to.equal(0o600);
  });

  it('opens a directory whose name has a dot (lmdb would take it for a file)', async () => {
    await openAndClose(join(dir, 'manager.v1'));
    expect(mode(join(dir, 'manager.v1', 'data.mdb'))).to.equal(0o600);
  });

  it('restrictMode only takes bits away, and leaves a missing path alone', () => {
    const file = join(dir, 'f');
    writeFileSync(file, 'x');
    chmodSync(file, 0o400);
    restrictMode(file, 0o600);
    expect(mode(file)).to.equal(0o400);
    chmodSync(file, 0o664);
    restrictMode(file, 0o600);
    expect(mode(file)).to.equal(0o600);
    expect(() => restrictMode(join(dir, 'missing'), 0o600)).to.not.throw();
  });
});
