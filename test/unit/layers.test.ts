/**
 * The layers of DESIGN.md, read from the import graph of src/: a rule broken by a new import
 * fails here, naming the file and the import.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

/** Every module of src/ (path relative to src/, e.g. `sync/run.ts`) → what it imports (same form, or a package name). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) graph.set(path.relative(SRC, full), importsOf(full));
    }
  };
  walk(SRC);
  return graph;
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)].map((m) => m[1] ?? m[2]!);
  return specs.map((s) => (s.startsWith('.') ? path.relative(SRC, path.resolve(path.dirname(file), s)).replace(/\.js$/, '.ts') : s));
}

const inside = (dir: string) => (m: string) => m.startsWith(dir + '/');
const ours = (m: string) => m.endsWith('.ts');
/** Packages and built-ins that do I/O. */
const io = (m: string) => /^(pg|pg-cursor|pg-copy-streams|node:.*)$/.test(m);

interface Rule {
  name: string;
  /** The modules the rule is about. */
  applies: (module: string) => boolean;
  /** An import the rule forbids for them. */
  forbids: (imported: string, module: string) => boolean;
}

/** DESIGN.md "Dependencies point one way". */
const RULES: Rule[] = [
  {
    name: 'sql/ imports nothing of pgferry outside sql/',
    applies: inside('sql'),
    forbids: (i) => ours(i) && !inside('sql')(i),
  },
  {
    name: 'conflict/ is pure decisions: no I/O, nothing of pgferry but types and itself',
    applies: inside('conflict'),
    forbids: (i) => io(i) || (ours(i) && !inside('conflict')(i) && i !== 'types.ts'),
  },
  {
    name: 'the applier and the delta reader do not know each other',
    applies: (m) => inside('apply')(m) || inside('delta')(m),
    forbids: (i, m) => (inside('apply')(m) && inside('delta')(i)) || (inside('delta')(m) && inside('apply')(i)),
  },
  {
    name: 'nothing below the face imports it',
    applies: (m) => m !== 'index.ts' && !inside('cli')(m),
    forbids: (i) => i === 'replicator.ts' || i === 'index.ts',
  },
  {
    name: 'cli/ (the pgferry command) uses the public API only: of pgferry, index.ts and cli/',
    applies: inside('cli'),
    forbids: (i) => ours(i) && i !== 'index.ts' && !inside('cli')(i),
  },
  {
    name: 'the library does not import the command',
    applies: (m) => !inside('cli')(m),
    forbids: (i) => inside('cli')(i),
  },
  {
    name: 'the parts a run uses do not reach up into the run, the scheduler or the face',
    applies: (m) => ['sql', 'catalog', 'db', 'delta', 'apply', 'conflict', 'capture', 'store'].some((d) => inside(d)(m)),
    forbids: (i) => inside('sync')(i) || inside('scheduler')(i),
  },
];

function violations(graph: Map<string, string[]>): string[] {
  const out: string[] = [];
  for (const [module, imports] of graph) {
    for (const rule of RULES) {
      if (!rule.applies(module)) continue;
      for (const i of imports) if (rule.forbids(i, module)) out.push(`${module} imports ${i}: breaks "${rule.name}"`);
    }
  }
  return out.sort();
}

describe('layers', () => {
  it('src/ keeps every layer rule', () => {
    const graph = importGraph();
    expect(graph.size).toBeGreaterThan(20);
    expect(violations(graph)).toEqual([]);
  });

  it('the rules catch the breaks 0.1 had', () => {
    // conflict/detect.ts did I/O, apply/ imported delta/reader for a name, sql/ident.ts imported errors.
    const old = new Map<string, string[]>([
      ['conflict/detect.ts', ['pg-cursor', 'db/session.ts', 'delta/reader.ts', 'sql/ident.ts', 'conflict/strategies.ts']],
      ['apply/applier.ts', ['delta/reader.ts', 'sql/ident.ts']],
      ['sql/ident.ts', ['errors.ts']],
      ['sync/run.ts', ['apply/applier.ts', 'delta/reader.ts']],
      // And what the command must not do: reach past the public API, or be reached by the library.
      ['cli/commands.ts', ['index.ts', 'cli/output.ts', 'replicator.ts', 'config.ts', 'commander']],
      ['define-config.ts', ['config.ts', 'cli/env.ts']],
    ]);
    expect(violations(old)).toEqual([
      'apply/applier.ts imports delta/reader.ts: breaks "the applier and the delta reader do not know each other"',
      'cli/commands.ts imports config.ts: breaks "cli/ (the pgferry command) uses the public API only: of pgferry, index.ts and cli/"',
      'cli/commands.ts imports replicator.ts: breaks "cli/ (the pgferry command) uses the public API only: of pgferry, index.ts and cli/"',
      'conflict/detect.ts imports db/session.ts: breaks "conflict/ is pure decisions: no I/O, nothing of pgferry but types and itself"',
      'conflict/detect.ts imports delta/reader.ts: breaks "conflict/ is pure decisions: no I/O, nothing of pgferry but types and itself"',
      'conflict/detect.ts imports pg-cursor: breaks "conflict/ is pure decisions: no I/O, nothing of pgferry but types and itself"',
      'conflict/detect.ts imports sql/ident.ts: breaks "conflict/ is pure decisions: no I/O, nothing of pgferry but types and itself"',
      'define-config.ts imports cli/env.ts: breaks "the library does not import the command"',
      'sql/ident.ts imports errors.ts: breaks "sql/ imports nothing of pgferry outside sql/"',
    ]);
  });
});
