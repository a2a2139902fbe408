// schedctl's start: `--version` is answered without loading the commands
// (and gRPC, protobuf, zod, yaml, x509 behind them); everything else loads them.
import { expect } from 'chai';
import { runCli, versionOnly } from '../../schedctl/src/cli.js';
import { VERSION } from '../../common/version.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false, env: {} });
  return { code, out, err };
}

describe('schedctl start', () => {
  it('takes the short way only when --version comes before anything but program options', () => {
    for (const argv of [
      ['--version'],
      ['-V'],
      ['-v', '--version'],
      ['-c', 'x.yaml', '-V'],
      ['--manager', 'h:1', '-o', 'json', '--verbose', '--version'],
      ['--config=x.yaml', '--output=yaml', '--manager=h:1', '-V'],
      ['-o', 'bogus', '--version'],
      ['--version', 'workers', 'ls'],
    ]) {
      expect(versionOnly(argv), argv.join(' ')).to.equal(true);
    }
    for (const argv of [
      [],
      ['--help'],
      ['-h', '--version'],
      ['workers', '--version'],
      ['workers', 'ls', '-V'],
      ['help'],
      // -c takes the next argument as its value, whatever it looks like.
      ['-c', '--version'],
      ['-vV'],
      ['-ojson', '--version'],
      ['--unknown', '--version'],
    ]) {
      expect(versionOnly(argv), argv.join(' ')).to.equal(false);
    }
  });

  it('prints the version either way', async () => {
    for (const args of [['--version'], ['-V'], ['-v', '-o', 'json', '--version'], ['workers', 'ls', '--version']]) {
      expect(await run(args), args.join(' ')).to.deep.equal({ code: 0, out: `${VERSION}\n`, err: '' });
    }
  });

  it('still checks the program options before --version', async () => {
    const res = await run(['-o', 'bogus', '--version']);
    expect(res.code).to.equal(2);
    expect(res.out).to.equal('');
    expect(res.err).to.match(/^schedctl: option '-o, --output <format>' argument 'bogus' is invalid/);
  });

  it('loads the commands for help', async () => {
    const res = await run(['--help']);
    expect(res.code).to.equal(0);
    expect(res.out).to.match(/^ {2}workers\s+remote servers/m);
    expect(res.out).to.match(/\$SCHED_CONFIG, else \/etc\/sched\/schedctl\.yaml/);
  });
});
