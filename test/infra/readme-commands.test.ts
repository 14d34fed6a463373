// The deploy documentation names only commands, options and context keys that exist (defect 11).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../lib/cli/program';
import { CONFIG_CONTEXT_KEYS, IGNORED_HTCGRID_KEYS, infraContextSchema } from '../../lib/infra/context-keys';
import { REPO_ROOT } from './grid-app';

const DOCS = ['README.md', path.join('lib', 'infra', 'README.md')];

/** Languages whose code is not shell: `htcgrid` there is a Python package or a TypeScript import, not the CLI. */
const NOT_SHELL = new Set(['python', 'ts', 'typescript', 'js', 'json', 'yaml']);

/** Every piece of shell code in a Markdown file: fenced blocks (but Python's, TypeScript's...) and inline spans. */
function codeOf(markdown: string): string[] {
  const fenced = [...markdown.matchAll(/```([a-z]*)\n([\s\S]*?)```/g)]
    .filter((m) => !NOT_SHELL.has(m[1]!))
    .map((m) => m[2]!.replace(/\\\n\s*/g, ' '));
  const withoutFences = markdown.replace(/```[a-z]*\n[\s\S]*?```/g, '');
  const inline = [...withoutFences.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
  return [...fenced, ...inline];
}

interface Invocation {
  readonly doc: string;
  readonly text: string;
  readonly words: string[];
}

/** `htcgrid <words...>` invocations in the code of a document, one per line, up to a shell separator. */
function htcgridInvocations(doc: string): Invocation[] {
  const markdown = fs.readFileSync(path.join(REPO_ROOT, doc), 'utf8');
  const found: Invocation[] = [];
  for (const code of codeOf(markdown)) {
    for (const line of code.split('\n')) {
      for (const m of line.matchAll(/(?:^|[\s(])htcgrid ([^|;#&)]*)/g)) {
        const text = `htcgrid ${m[1]!.trim()}`;
        found.push({ doc, text, words: m[1]!.trim().split(/\s+/).filter(Boolean) });
      }
    }
  }
  return found;
}

/** The subcommand the words name and the options they pass, or the first word that is not a command or option. */
function check(program: Command, words: readonly string[]): string[] {
  const problems: string[] = [];
  let command = program;
  let i = 0;
  while (i < words.length) {
    const sub = command.commands.find((c) => c.name() === words[i]);
    if (!sub) break;
    command = sub;
    i++;
  }
  if (command === program) return [`no command "${words[0] ?? ''}"`];
  const known = new Set(command.options.flatMap((o) => [o.long, o.short]).filter(Boolean) as string[]);
  known.add('--help');
  for (const word of words.slice(i)) {
    if (!word.startsWith('-')) continue;
    const flag = word.split('=')[0]!;
    if (!known.has(flag)) problems.push(`${command.name()} has no option ${flag}`);
  }
  return problems;
}

describe('the deploy documentation', () => {
  const program = buildProgram(() => undefined);
  const invocations = DOCS.flatMap(htcgridInvocations);

  it('shows htcgrid commands in both READMEs', () => {
    expect(invocations.filter((i) => i.doc === 'README.md').length).toBeGreaterThan(5);
    expect(invocations.filter((i) => i.doc !== 'README.md').length).toBeGreaterThan(0);
  });

  it('names only htcgrid commands and options that exist', () => {
    const wrong = invocations.flatMap((inv) =>
      check(program, inv.words).map((p) => `${inv.doc}: \`${inv.text}\`: ${p}`),
    );

    expect(wrong).toEqual([]);
  });
});

describe('the context keys the deploy documentation names', () => {
  const known = new Set([
    ...Object.keys(infraContextSchema.shape),
    ...CONFIG_CONTEXT_KEYS,
    ...Object.keys(IGNORED_HTCGRID_KEYS),
  ]);

  it.each(DOCS)('in %s, every -c key exists, and every key of its context-key tables', (doc) => {
    const markdown = fs.readFileSync(path.join(REPO_ROOT, doc), 'utf8');
    const inCommands = codeOf(markdown).flatMap((code) => [...code.matchAll(/-c ([a-z0-9_]+)=/g)].map((m) => m[1]!));
    const section = markdown.slice(markdown.indexOf('Context keys'));
    const tableStart = section.indexOf('\n|');
    const tables = section.slice(tableStart, section.indexOf('\n\n', tableStart));
    const inTables = [...tables.matchAll(/^\| ((?:`[a-z0-9_]+`(?: \/ |, )?)+) \|/gm)].flatMap((m) =>
      [...m[1]!.matchAll(/`([a-z0-9_]+)`/g)].map((k) => k[1]!),
    );

    expect(inTables.length).toBeGreaterThan(20);
    expect([...inCommands, ...inTables].filter((key) => !known.has(key))).toEqual([]);
  });
});
