// A real terminal for the CLI tests: a tmux server on a socket of its own
// (never the user's), one window of a fixed size running bash, driven with
// send-keys and read with capture-pane. Stopped by its pid.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './processes.js';

export function hasTmux(): boolean {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface Terminal {
  /** Types text (no Enter). */
  type(text: string): void;
  /** Types a command line and presses Enter. */
  run(line: string): void;
  /** Sends tmux key names, e.g. 'C-c', 'Enter'. */
  keys(...names: string[]): void;
  /** The visible screen, one string per line (a line the terminal wrapped is joined again), trailing spaces trimmed. */
  screen(): string[];
  /** Waits until the screen (joined by newlines) matches. */
  waitFor(what: string, test: RegExp | ((screen: string) => boolean), timeoutMs?: number): Promise<string>;
  /** Runs a command line and waits for its exit status (printed by the shell after it). */
  exitStatus(timeoutMs?: number): Promise<number>;
  close(): void;
}

/**
 * Opens a width × height terminal running a plain bash (no rc files, a
 * one-character prompt) in cwd, with env added to the test's environment.
 */
export function openTerminal(opts: { width?: number; height?: number; cwd: string; env?: Record<string, string> }): Terminal {
  const dir = mkdtempSync(join(tmpdir(), 'sched-tmux-'));
  const socket = join(dir, 'socket');
  const tmux = (...args: string[]): string => execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8' });
  // Through env(1) rather than tmux's -e, which older tmux lacks.
  const env = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`);
  tmux(
    'new-session', '-d', '-x', String(opts.width ?? 80), '-y', String(opts.height ?? 24), '-c', opts.cwd,
    'env', ...env, 'PS1=$ ', 'TERM=xterm-256color', 'bash', '--norc', '--noprofile',
  );
  // The window keeps its size whatever clients attach (none do).
  tmux('set-option', '-g', 'window-size', 'manual');
  const pid = Number(tmux('display-message', '-p', '#{pid}').trim());
  let statusSeen = 0;
  const term: Terminal = {
    type: (text) => void tmux('send-keys', '-l', text),
    run(line) {
      tmux('send-keys', '-l', line);
      tmux('send-keys', 'Enter');
    },
    keys: (...names) => void tmux('send-keys', ...names),
    screen: () => tmux('capture-pane', '-p', '-J').replace(/\n$/, '').split('\n').map((l) => l.trimEnd()),
    async waitFor(what, test, timeoutMs = 20_000) {
      const matches = typeof test === 'function' ? test : (s: string) => test.test(s);
      return waitFor(what, () => {
        const s = term.screen().join('\n');
        return matches(s) ? s : undefined;
      }, timeoutMs, 50);
    },
    async exitStatus(timeoutMs = 30_000) {
      // A marker the shell prints once the previous command has ended; counted, so each call waits for its own.
      const n = ++statusSeen;
      tmux('send-keys', '-l', `echo "exit-status-${n}=$?"`);
      tmux('send-keys', 'Enter');
      const s = await term.waitFor(`exit status ${n}`, new RegExp(`^exit-status-${n}=\\d+$`, 'm'), timeoutMs);
      return Number(new RegExp(`^exit-status-${n}=(\\d+)$`, 'm').exec(s)![1]);
    },
    close() {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return term;
}
