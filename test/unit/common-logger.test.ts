// The daemons' log renderings (common/logger.ts): pino's JSON lines, and the text
// form for people; a logger in a child process writes either to its stderr.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { renderLine } from '../../common/logger.js';
import { ROOT } from '../support/processes.js';

const TIME = Date.UTC(2026, 10, 25, 22, 57, 0, 123);

/** The lines a pino logger named name writes for what log does, rendered as text. */
function rendered(log: (l: pino.Logger) => void, name = 'management-node', level = 'info'): string[] {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(renderLine(chunk.toString()));
      done();
    },
  });
  log(pino({ name, level, base: { name }, timestamp: () => `,"time":${TIME}` }, sink));
  return lines;
}

describe('common: logger', () => {
  it('renders a record as ISO time, level, name and message, then the fields as key=value', () => {
    const [line] = rendered((l) => l.info({ task: '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', worker: 'w1', attempt: 2, draining: false }, 'task placed'));
    expect(line).to.equal('2026-11-25T22:57:00.123Z INFO  management-node: task placed task=0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b worker=w1 attempt=2 draining=false\n');
  });

  it('names every level, padded to one width', () => {
    const lines = rendered((l) => {
      l.trace('t');
      l.debug('d');
      l.info('i');
      l.warn('w');
      l.error('e');
      l.fatal('f');
    }, 'worker-node', 'trace');
    expect(lines.map((s) => s.slice(25, 31))).to.deep.equal(['TRACE ', 'DEBUG ', 'INFO  ', 'WARN  ', 'ERROR ', 'FATAL ']);
  });

  it('quotes values with spaces, quotes or "=", and empty ones; objects as JSON; keeps each record on one line', () => {
    const [line] = rendered((l) =>
      l.warn({ reason: 'no worker fits', empty: '', eq: 'a=b', q: 'say "hi"', labels: { zone: 'a', gpu: 'yes' }, list: [1, 2], none: null }, 'two\nlines'),
    );
    expect(line).to.equal(
      '2026-11-25T22:57:00.123Z WARN  management-node: two\\nlines reason="no worker fits" empty="" eq="a=b" q="say \\"hi\\"" labels={"zone":"a","gpu":"yes"} list=[1,2] none=null\n',
    );
    expect(line!.split('\n')).to.have.length(2);
  });

  it('shows an error by its message', () => {
    const [line] = rendered((l) => l.error({ err: new Error('store down: connection refused') }, 'store commit failed'));
    expect(line).to.equal('2026-11-25T22:57:00.123Z ERROR management-node: store commit failed err="store down: connection refused"\n');
  });

  it('passes a line that is not a JSON object through unchanged', () => {
    expect(renderLine('not json\n')).to.equal('not json\n');
    expect(renderLine('[1,2]')).to.equal('[1,2]');
  });

  it('createLogger writes text or JSON to stderr, JSON by default when stderr is not a terminal', () => {
    const script = (format: string) =>
      `import { createLogger } from './common/logger.ts'; const l = createLogger('probe', 'info'${format ? `, '${format}'` : ''}); l.info({ n: 1 }, 'hello there'); process.stdout.write('out');`;
    const run = (format: string) => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(format)], { cwd: ROOT, encoding: 'utf8' });
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stdout).to.equal('out');
      return r.stderr;
    };
    expect(run('text')).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}probe: hello there n=1\n$/);
    for (const format of ['json', '']) {
      const rec = JSON.parse(run(format)) as Record<string, unknown>;
      expect(rec).to.include({ level: 30, name: 'probe', msg: 'hello there', n: 1 });
    }
  });
});
