// build/sea-runtime/native-addon.ts: where a standalone executable writes the
// native addon it carries before loading it. Only a directory of this user that
// no one else can write is used; the file is named by its content and replaced
// when its bytes are not the addon's.
import { expect } from 'chai';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { candidateDirs, extractAddon, NATIVE_DIR_ENV } from '../../build/sea-runtime/native-addon.js';

describe('build: native addon extraction (standalone executables)', () => {
  let root: string;
  const bytes = new Uint8Array(Buffer.from('\x7fELF pretend addon'));

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'sched-native-test-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('writes the addon as <name>-<hash>.node, 0600, in a directory it makes 0700', () => {
    const dir = join(root, 'native');
    const { path, skipped } = extractAddon(bytes, 'lmdb', [dir]);
    expect(skipped).to.deep.equal([]);
    expect(path).to.match(new RegExp(`^${dir}/lmdb-[0-9a-f]{16}\\.node$`));
    expect(readFileSync(path).equals(Buffer.from(bytes))).to.equal(true);
    expect(statSync(dir).mode & 0o777).to.equal(0o700);
    expect(statSync(path).mode & 0o777).to.equal(0o600);
  });

  it('keeps a file whose bytes are the addon and replaces one whose bytes are not', () => {
    const dir = join(root, 'native');
    const { path } = extractAddon(bytes, 'lmdb', [dir]);
    const first = statSync(path).ino;
    expect(extractAddon(bytes, 'lmdb', [dir]).path).to.equal(path);
    expect(statSync(path).ino).to.equal(first);
    writeFileSync(path, 'tampered');
    expect(extractAddon(bytes, 'lmdb', [dir]).path).to.equal(path);
    expect(readFileSync(path).equals(Buffer.from(bytes))).to.equal(true);
    expect(readdirSync(dir)).to.have.length(1);
  });

  it('passes over a directory others may write, and a symlink, for the next candidate', () => {
    const open = join(root, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const link = join(root, 'link');
    symlinkSync(open, link);
    const good = join(root, 'good');
    const { path, skipped } = extractAddon(bytes, 'lmdb', [open, link, good]);
    expect(path.startsWith(`${good}/`)).to.equal(true);
    expect(skipped[0]).to.include('writable by others');
    expect(skipped[1]).to.include('not a directory');
    expect(readdirSync(open)).to.deep.equal([]);
  });

  it('fails naming every candidate and the variable to set when none is usable', () => {
    const file = join(root, 'a-file');
    writeFileSync(file, '');
    expect(() => extractAddon(bytes, 'lmdb', [join(file, 'sub')])).to.throw(new RegExp(`a-file/sub: .*set ${NATIVE_DIR_ENV}`));
  });

  it('tries the operator\'s directory first, then the runtime directory, then the temporary one', () => {
    const dirs = candidateDirs({ [NATIVE_DIR_ENV]: '/srv/native', XDG_RUNTIME_DIR: '/run/user/1000' });
    expect(dirs.slice(0, 2)).to.deep.equal(['/srv/native', '/run/user/1000/sched-native']);
    expect(dirs[2]).to.equal(join(tmpdir(), `sched-native-${process.getuid!()}`));
    expect(candidateDirs({})).to.deep.equal([dirs[2]]);
  });
});
