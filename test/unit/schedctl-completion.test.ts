// schedctl completion: each script is run by its own shell, as a user's shell
// would (bash always; zsh and fish when installed, else skipped saying so).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../schedctl/src/cli.js';

async function script(shell: string): Promise<string> {
  let out = '';
  let err = '';
  const code = await runCli(['completion', shell], { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false, env: {} });
  expect(code, err).to.equal(0);
  return out;
}

const installed = (shell: string): boolean => spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;

describe('schedctl completion', function () {
  this.timeout(20_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'schedctl-completion-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** What bash's completion function offers for the words typed (the last one being completed). */
  function bashComplete(file: string, words: string[]): string[] {
    const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
    const r = spawnSync('bash', ['-c', `source "$1"; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _schedctl; printf '%s\\n' "\${COMPREPLY[@]}"`, 'bash', file], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).to.equal(0);
    return r.stdout.split('\n').filter(Boolean);
  }

  it('bash: the script registers a completion function for schedctl', async () => {
    const file = join(dir, 'schedctl.bash');
    writeFileSync(file, await script('bash'));
    const r = spawnSync('bash', ['-c', `source <(cat "$1"); complete -p schedctl`, 'bash', file], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal('complete -F _schedctl schedctl');
    expect(r.stderr).to.equal('');
  });

  it('bash: completes targets, commands, aliases, flags and the choices of --state, --outcome and -o', async () => {
    const file = join(dir, 'schedctl.bash');
    writeFileSync(file, await script('bash'));
    expect(bashComplete(file, ['schedctl', ''])).to.include.members(['workers', 'tasks', 'status', 'tls', 'completion']);
    expect(bashComplete(file, ['schedctl', 'tasks', ''])).to.include.members(['run', 'schedule', 'ls', 'show', 'cancel', 'logs']);
    expect(bashComplete(file, ['schedctl', 'workers', ''])).to.include.members(['ls', 'show', 'drain', 'undrain', 'rm']);
    expect(bashComplete(file, ['schedctl', 'tasks', 'ls', '--state', ''])).to.deep.equal(['pending', 'scheduled', 'running', 'done', 'dead']);
    expect(bashComplete(file, ['schedctl', 'tasks', 'ls', '--outcome', ''])).to.deep.equal(['succeeded', 'failed', 'timed-out', 'cancelled', 'lost']);
    // --state of tasks cancel has its own choices: the path decides.
    expect(bashComplete(file, ['schedctl', 'tasks', 'cancel', '--state', ''])).to.deep.equal(['pending', 'scheduled', 'running']);
    expect(bashComplete(file, ['schedctl', '-o', ''])).to.deep.equal(['table', 'wide', 'json', 'yaml', 'name']);
    // Program options and their values are stepped over, --flag=value too.
    expect(bashComplete(file, ['schedctl', '--manager', 'h:1', '-o', 'json', 'tasks', 'l'])).to.deep.equal(['ls', 'logs']);
    expect(bashComplete(file, ['schedctl', '--output=json', 'workers', 'dr'])).to.deep.equal(['drain']);
    expect(bashComplete(file, ['schedctl', 'tasks', 'schedule', '--sp'])).to.deep.equal(['--spread']);
    expect(bashComplete(file, ['schedctl', 'workers', 'drain', '--'])).to.include.members(['--deadline', '--wait', '--output', '--no-headers']);
    expect(bashComplete(file, ['schedctl', 'completion', ''])).to.deep.equal(['bash', 'zsh', 'fish']);
    // After --, the words are the task's: nothing is offered.
    expect(bashComplete(file, ['schedctl', 'tasks', 'run', '--', ''])).to.deep.equal([]);
    // A file flag completes file names.
    writeFileSync(join(dir, 'conf-a.yaml'), '');
    expect(bashComplete(file, ['schedctl', '-c', join(dir, 'conf-')])).to.deep.equal([join(dir, 'conf-a.yaml')]);
  });

  it('zsh: the script loads and registers schedctl', async function () {
    if (!installed('zsh')) {
      console.log('      (skipped: zsh is not installed)');
      this.skip();
    }
    const file = join(dir, 'schedctl.zsh');
    writeFileSync(file, await script('zsh'));
    const r = spawnSync('zsh', ['-c', `source "$1"; print -r -- \${_comps[schedctl]}`, 'zsh', file], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/_bash_complete|_schedctl/);
  });

  it('fish: the script loads and completes --state', async function () {
    if (!installed('fish')) {
      console.log('      (skipped: fish is not installed)');
      this.skip();
    }
    const file = join(dir, 'schedctl.fish');
    writeFileSync(file, await script('fish'));
    const r = spawnSync('fish', ['-c', `source $argv[1]; complete -C 'schedctl tasks ls --state '`, file], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout.split('\n').map((l) => l.split('\t')[0])).to.include.members(['pending', 'running', 'dead']);
  });
});
