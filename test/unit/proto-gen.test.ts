// Generated code is committed; this fails when proto/ changed without `make proto`.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ROOT } from '../support/processes.js';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

describe('proto', function () {
  this.timeout(60_000);
  const proto = join(ROOT, 'proto');
  const buf = join(ROOT, 'node_modules/.bin/buf');

  it('passes buf lint', () => {
    execFileSync(buf, ['lint'], { cwd: proto, stdio: 'pipe' });
  });

  it('proto/gen is what `make proto` generates', () => {
    const out = mkdtempSync(join(tmpdir(), 'sched-proto-'));
    try {
      execFileSync(buf, ['generate', '-o', out], { cwd: proto, stdio: 'pipe' });
      const fresh = join(out, 'gen');
      const committed = join(proto, 'gen');
      const names = (d: string) => files(d).map((f) => relative(d, f)).sort();
      expect(names(committed)).to.deep.equal(names(fresh));
      for (const name of names(fresh)) {
        expect(readFileSync(join(committed, name), 'utf8'), `${name} is stale: run make proto`).to.equal(
          readFileSync(join(fresh, name), 'utf8'),
        );
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
