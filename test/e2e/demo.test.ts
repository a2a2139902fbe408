// `make demo` is one of the README's two commands: keep it working.
import { expect } from 'chai';
import { join } from 'node:path';
import { ROOT, run } from '../support/processes.js';

describe('e2e: the demo', function () {
  this.timeout(120_000);

  it('starts a local cluster on the embedded store, runs tasks, prints both tables and stops', async () => {
    const r = await run('bash', [join(ROOT, 'test/demo/demo.sh')], { timeoutMs: 110_000 });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include('hello from sched');
    expect(r.stdout).to.include('(schedctl exited with 3');
    const workers = r.stdout.split('$ schedctl workers ls')[1]!.split('$ schedctl tasks ls')[0]!;
    expect(workers.match(/\bconnected\b/g)).to.have.length(2);
    const tasks = r.stdout.split('$ schedctl tasks ls')[1]!;
    expect(tasks.match(/\bdone\b/g)).to.have.length(8);
  });
});
