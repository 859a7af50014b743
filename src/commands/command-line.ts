/**
 * The command line beyond commander's own checks: a positional argument where an option was meant,
 * or an unknown option, caught before commander reports something less useful; and the command
 * tree and paths that ../cli.ts hangs the help examples and these checks on. Imports only
 * commander's types: cli.ts loads it before any library module, so an old Node.js still gets
 * runtime.ts's one line.
 */
import type { Command, Option } from 'commander';

/** A command and every command under it, depth first. */
export function commandTree(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(commandTree)];
}

/** `gpt show` for the show subcommand of gpt; `fastpatch` for the program. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ') || cmd.name();
}

/**
 * `apply IMG TARGET` or `update P DISK`: commander would say only that --target (or --disk) is
 * missing, or that there are too many arguments. Say both, and name the option most likely meant
 * (the first required one not given). An unknown option is reported here too, with commander's
 * suggestion, before commander's own check for missing required options hides it. --help wins.
 */
export function checkCommandLine(parent: Command, sub: Command): void {
  if (sub.commands.length > 0) return;
  const declared = sub.registeredArguments;
  if (declared.at(-1)?.variadic) return;
  const args = parent.args.slice(1);
  const operands: string[] = [];
  const given = new Set<Option>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (a.length < 2 || !a.startsWith('-')) {
      operands.push(a);
      continue;
    }
    if (a === '-h' || a === '--help') return;
    const long = a.startsWith('--');
    const flag = long ? a.split('=')[0]! : a.slice(0, 2);
    const option = sub.options.find((o) => o.long === flag || o.short === flag);
    // commander checks required options before unknown ones, so `--taget x` would only hear that
    // --target is missing: report the typo first, with commander's own "did you mean".
    if (!option) return unknownOption(sub, flag);
    given.add(option);
    const attached = long ? a.includes('=') : a.length > 2;
    // A value follows: always for `<value>`, for `[value]` unless the next word is an option.
    if (!attached && (option.required || (option.optional && !args[i + 1]?.startsWith('-')))) i++;
  }
  if (operands.length <= declared.length) return;
  const extra = operands[declared.length]!;
  const takes = declared.length === 0 ? 'no arguments' : declared.map((d) => (d.required ? `<${d.name()}>` : `[${d.name()}]`)).join(' ');
  const meant = sub.options.find((o) => o.mandatory && o.required && !given.has(o));
  sub.error(`too many arguments for '${commandPath(sub)}' (it takes ${takes}, got '${extra}' too)${meant ? `: did you mean ${meant.long} ${extra}?` : ''}`, { code: 'commander.excessArguments' });
}

/** commander's error for an unknown option, with its suggestion (an untyped method of commander 14). */
function unknownOption(cmd: Command, flag: string): never {
  const withSuggestion = cmd as unknown as { unknownOption?: (flag: string) => never };
  if (typeof withSuggestion.unknownOption === 'function') withSuggestion.unknownOption(flag);
  return cmd.error(`unknown option '${flag}'`, { code: 'commander.unknownOption' });
}
