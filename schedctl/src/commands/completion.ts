// schedctl completion bash|zsh|fish: a completion script made from
// commander's own command tree (commands, aliases, flags, the choices of
// flags such as --state, --outcome and -o), so it never drifts from the CLI.
//
// All three complete the same way: the words typed so far are walked from the
// left, skipping flags (and the value after a flag that takes one, unless
// written --flag=value), descending into each word that names a subcommand;
// after `--` (the task's own argv) nothing is offered. Then: after a flag
// that takes a value, its choices (or file names for files); for a word
// starting with '-', the flags of that command and the program's; otherwise
// its subcommands, or a leaf's argument choices (completion's shell).
import type { Command, Option } from 'commander';
import type { Ctx } from './context.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** A flag as completion sees it. */
export interface Flag {
  names: string[];
  description: string;
  /** Whether the next word is its value. */
  takesValue: boolean;
  choices: string[];
  /** The value names a file (or a directory). */
  file: 'file' | 'dir' | undefined;
}

/** One command: its path of names from the root ("" for the root), its flags and children. */
export interface Node {
  path: string;
  description: string;
  flags: Flag[];
  children: string[];
  /** Choices of the first argument, for a leaf (completion's shell). */
  args: string[];
}

const FILE_FLAGS: Record<string, 'file' | 'dir'> = { '--config': 'file', '--file': 'file', '--dir': 'dir', '--ca-dir': 'dir' };

function flagOf(o: Option): Flag {
  const names = [o.short, o.long].filter((n): n is string => !!n);
  return {
    names,
    description: o.description,
    takesValue: o.required || o.optional,
    choices: o.argChoices ?? [],
    file: o.long ? FILE_FLAGS[o.long] : undefined,
  };
}

/** Every command under `root` (itself first), aliases as commands of their own (tasks schedule = tasks run). */
export function commandTree(root: Command): Node[] {
  const nodes: Node[] = [];
  const walk = (cmd: Command, path: string): void => {
    const subs = cmd.commands.filter((c) => !(c as Command & { _hidden?: boolean })._hidden);
    const children = subs.flatMap((c) => [c.name(), ...c.aliases()]);
    const args = subs.length === 0 ? (cmd.registeredArguments[0]?.argChoices ?? []) : [];
    const flags = cmd.options.filter((o) => !o.hidden).map(flagOf);
    nodes.push({ path, description: cmd.description(), flags, children, args });
    for (const c of subs) for (const name of [c.name(), ...c.aliases()]) walk(c, path ? `${path} ${name}` : name);
  };
  walk(root, '');
  return nodes;
}

/** Single-quoted for sh and fish. */
const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
/** Within a double-quoted bash case pattern. */
const pat = (s: string): string => s.replace(/["\\$`]/g, (c) => `\\${c}`);

/** The value words of a flag for bash's compgen: its choices, or @file / @dir. */
const valuesOf = (f: Flag): string => (f.choices.length > 0 ? f.choices.join(' ') : f.file ? `@${f.file}` : '');

export function bashScript(nodes: Node[]): string {
  const root = nodes[0]!;
  const globalValues = root.flags.filter((f) => f.takesValue);
  const lines: string[] = [];
  lines.push('# schedctl completion for bash: source <(schedctl completion bash)', '');
  // _schedctl_sub PATH WORD: the path WORD leads to, if it names a subcommand of PATH.
  lines.push('_schedctl_sub() {', '  case "$1|$2" in');
  for (const n of nodes) for (const c of n.children) lines.push(`    "${pat(`${n.path}|${c}`)}") echo "${pat(n.path ? `${n.path} ${c}` : c)}" ;;`);
  lines.push('  esac', '}', '');
  // _schedctl_value PATH FLAG: succeeds if FLAG takes a value there, printing its choices (or @file, @dir).
  lines.push('_schedctl_value() {', '  case "$2" in');
  for (const f of globalValues) lines.push(`    ${f.names.map((n) => `"${pat(n)}"`).join('|')}) echo "${pat(valuesOf(f))}"; return 0 ;;`);
  lines.push('  esac', '  case "$1|$2" in');
  for (const n of nodes.slice(1)) {
    for (const f of n.flags.filter((x) => x.takesValue)) {
      lines.push(`    ${f.names.map((name) => `"${pat(`${n.path}|${name}`)}"`).join('|')}) echo "${pat(valuesOf(f))}"; return 0 ;;`);
    }
  }
  lines.push('  esac', '  return 1', '}', '');
  // _schedctl_words PATH: the flags (for a word starting with -) or the subcommands / argument choices.
  lines.push('_schedctl_flags() {', '  case "$1" in');
  for (const n of nodes.slice(1)) lines.push(`    "${pat(n.path)}") echo "${pat(n.flags.flatMap((f) => f.names).join(' '))}" ;;`);
  lines.push('  esac', `  echo "${pat(root.flags.flatMap((f) => f.names).join(' '))}"`, '}', '');
  lines.push('_schedctl_next() {', '  case "$1" in');
  for (const n of nodes) {
    const words = n.children.length > 0 ? n.children : n.args;
    if (words.length > 0) lines.push(`    "${pat(n.path)}") echo "${pat(words.join(' '))}" ;;`);
  }
  lines.push('  esac', '}', '');
  lines.push(
    '_schedctl() {',
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path="" word sub values i',
    '  COMPREPLY=()',
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    word="${COMP_WORDS[i]}"',
    '    [[ "$word" == "--" ]] && return 0',
    '    if [[ "$word" == -* ]]; then',
    '      if [[ "$word" != *=* ]] && _schedctl_value "$path" "$word" >/dev/null; then',
    '        ((i++))',
    '        [[ $i -eq $COMP_CWORD ]] && prev="$word"',
    '      fi',
    '      continue',
    '    fi',
    '    sub="$(_schedctl_sub "$path" "$word")"',
    '    [[ -n "$sub" ]] && path="$sub"',
    '  done',
    '  if [[ -n "$prev" ]]; then',
    '    values="$(_schedctl_value "$path" "$prev")"',
    '    case "$values" in',
    '      @file) COMPREPLY=($(compgen -f -- "$cur")) ;;',
    '      @dir) COMPREPLY=($(compgen -d -- "$cur")) ;;',
    '      *) COMPREPLY=($(compgen -W "$values" -- "$cur")) ;;',
    '    esac',
    '    return 0',
    '  fi',
    '  if [[ "$cur" == -* ]]; then',
    '    COMPREPLY=($(compgen -W "$(_schedctl_flags "$path")" -- "$cur"))',
    '  else',
    '    COMPREPLY=($(compgen -W "$(_schedctl_next "$path")" -- "$cur"))',
    '  fi',
    '}',
    '',
    'complete -F _schedctl schedctl',
    '',
  );
  return lines.join('\n');
}

/** zsh runs the bash script through its bash emulation (bashcompinit), which zsh ships for exactly this. */
export function zshScript(nodes: Node[]): string {
  return [
    '#compdef schedctl',
    '# schedctl completion for zsh: source <(schedctl completion zsh)',
    'autoload -U +X compinit && compinit',
    'autoload -U +X bashcompinit && bashcompinit',
    bashScript(nodes).split('\n').slice(2).join('\n'),
  ].join('\n');
}

export function fishScript(nodes: Node[]): string {
  const root = nodes[0]!;
  const valueFlags = nodes.flatMap((n) => n.flags.filter((f) => f.takesValue).flatMap((f) => f.names.map((name) => (n.path ? `${n.path}|${name}` : name))));
  const lines = [
    '# schedctl completion for fish: schedctl completion fish | source',
    `set -g __schedctl_paths ${nodes.slice(1).map((n) => q(n.path)).join(' ')}`,
    `set -g __schedctl_value_flags ${valueFlags.map(q).join(' ')}`,
    'function __schedctl_path',
    '  set -l words (commandline -opc)',
    '  set -e words[1]',
    '  set -l path ""',
    '  set -l skip 0',
    '  for w in $words',
    '    if test $skip = 1',
    '      set skip 0',
    '      continue',
    '    end',
    '    if test "$w" = "--"',
    '      echo -- "--"',
    '      return',
    '    end',
    '    if string match -q -- "-*" $w',
    '      if not string match -q -- "*=*" $w; and begin; contains -- $w $__schedctl_value_flags; or contains -- "$path|$w" $__schedctl_value_flags; end',
    '        set skip 1',
    '      end',
    '      continue',
    '    end',
    '    set -l next (string trim -- "$path $w")',
    '    if contains -- $next $__schedctl_paths',
    '      set path $next',
    '    end',
    '  end',
    '  echo -- $path',
    'end',
    'function __schedctl_at',
    '  test (__schedctl_path) = "$argv[1]"',
    'end',
    'complete -c schedctl -f',
  ];
  const flagLine = (cond: string, f: Flag): string => {
    const names = f.names.map((n) => (n.startsWith('--') ? `-l ${q(n.slice(2))}` : `-s ${q(n.slice(1))}`)).join(' ');
    const value = f.takesValue ? (f.choices.length > 0 ? ` -x -a ${q(f.choices.join(' '))}` : f.file ? ' -r -F' : ' -x') : '';
    return `complete -c schedctl ${cond}${names}${value} -d ${q(f.description)}`;
  };
  for (const f of root.flags) lines.push(flagLine('-n \'test (__schedctl_path) != "--"\' ', f));
  for (const n of nodes) {
    const cond = `-n ${q(`__schedctl_at ${q(n.path)}`)} `;
    for (const child of n.children) {
      const node = nodes.find((x) => x.path === (n.path ? `${n.path} ${child}` : child));
      lines.push(`complete -c schedctl ${cond}-a ${q(child)} -d ${q(node?.description ?? '')}`);
    }
    if (n.args.length > 0) lines.push(`complete -c schedctl ${cond}-a ${q(n.args.join(' '))}`);
    if (n !== root) for (const f of n.flags) lines.push(flagLine(cond, f));
  }
  return `${lines.join('\n')}\n`;
}

export function completionScript(shell: Shell, root: Command): string {
  const nodes = commandTree(root);
  return shell === 'bash' ? bashScript(nodes) : shell === 'zsh' ? zshScript(nodes) : fishScript(nodes);
}

/** `schedctl completion SHELL` (registered in register-other.ts): the script on stdout. */
export async function completion(ctx: Ctx, shell: Shell, _opts: unknown, command: Command): Promise<void> {
  let root = command;
  while (root.parent) root = root.parent;
  ctx.io.out(completionScript(shell, root));
}
