/**
 * Finds and reads the configuration: `--config FILE`, else the first of
 * `pgferry.config.mjs`, `.js`, `.json` in the current directory. A module's default export is
 * the configuration; a `.json` file is parsed. Then `${NAME}` references are replaced from the
 * environment and the result is checked by `defineConfig()`.
 */
import createDebug from 'debug';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { defineConfig, isPgferryError, PgferryError, type PgferryConfig } from '../index.js';
import { substituteEnv } from './env.js';
import type { Output } from './output.js';
import { secretsOf } from './secrets.js';

const debug = createDebug('pgferry:cli');

export const DEFAULT_CONFIG_FILES = ['pgferry.config.mjs', 'pgferry.config.js', 'pgferry.config.json'];

/** The file to read: the one given (relative to `cwd`), else the first default file that exists. */
export function configPath(given: string | undefined, cwd: string): string {
  if (given !== undefined) {
    const file = path.resolve(cwd, given);
    if (!existsSync(file)) throw invalid(`Config file ${file} does not exist.`, '--config', 'no such file');
    return file;
  }
  for (const name of DEFAULT_CONFIG_FILES) {
    const file = path.join(cwd, name);
    if (existsSync(file)) return file;
  }
  throw invalid(`No config file: none of ${DEFAULT_CONFIG_FILES.join(', ')} in ${cwd}. Create one, or pass --config FILE.`, '--config', 'no config file');
}

/** Reads, substitutes and checks the configuration; its passwords go to `output` before anything is checked. */
export async function loadConfig(given: string | undefined, output: Output, cwd = process.cwd()): Promise<PgferryConfig> {
  const file = configPath(given, cwd);
  debug('reading config %s', file);
  const raw = await readConfigFile(file);
  // `${NAME}` placeholders are no secrets (and must stay readable in messages).
  output.addSecrets(secretsOf(raw).filter((s) => !/^\$\{\w+\}$/.test(s)));
  const config = substituteEnv(raw);
  output.addSecrets(secretsOf(config));
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw invalid(`Config file ${file} must export an object (export default defineConfig({ databases, syncs })).`, '(root)', 'must be an object');
  }
  return defineConfig(config as PgferryConfig);
}

async function readConfigFile(file: string): Promise<unknown> {
  if (file.endsWith('.json')) {
    const text = await readFile(file, 'utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      // V8 quotes part of the text in its message: keep only where it went wrong.
      const why = (err as Error).message.replace(/"(?:[^"\\]|\\.)*"/g, '…');
      throw invalid(`Config file ${file} is not valid JSON: ${why}.`, '(root)', 'not valid JSON');
    }
  }
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    if (isPgferryError(err)) throw err; // defineConfig() in the file said what is wrong
    throw invalid(`Cannot load config file ${file}: ${(err as Error)?.message ?? String(err)}`, '(root)', 'cannot be loaded');
  }
  if (mod.default === undefined) {
    throw invalid(`Config file ${file} has no default export: write export default defineConfig({ databases, syncs }).`, '(root)', 'no default export');
  }
  return mod.default;
}

function invalid(message: string, path: string, issue: string): PgferryError {
  return new PgferryError('CONFIG_INVALID', message, { issues: [{ path, message: issue }] });
}
