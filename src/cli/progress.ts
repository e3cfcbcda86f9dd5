/**
 * Progress of full copies (`copy:progress`) and validation (`validate:progress`) on stderr:
 * bars on a terminal (cli-progress), plain lines otherwise (the first report of each table,
 * at most one every few seconds after that, and the last).
 */
import cliProgress from 'cli-progress';
import type { CopyProgressEvent, Replicator, ValidateProgressEvent } from '../index.js';
import type { Output } from './output.js';

/** Between two plain progress lines of one table. */
const LINE_EVERY_MS = 5_000;

interface Report {
  key: string;
  label: string;
  rows: number;
  totalEstimate: number;
  done: boolean;
}

interface Display {
  update(r: Report): void;
  stop(): void;
}

/** Shows the replicator's copy and validation progress until the returned function is called. */
export function showProgress(rep: Replicator, output: Output): () => void {
  const display = output.interactive ? bars(output) : lines(output);
  const onCopy = (e: CopyProgressEvent) =>
    display.update({ key: `copy ${e.sync} ${e.table} ${e.target}`, label: `copy ${e.sync} ${e.table} → ${e.target}`, rows: e.rows, totalEstimate: e.totalEstimate, done: e.done });
  const onValidate = (e: ValidateProgressEvent) =>
    display.update({ key: `validate ${e.sync} ${e.table}`, label: `validate ${e.sync} ${e.table}`, rows: e.rows, totalEstimate: e.totalEstimate, done: e.done });
  rep.on('copy:progress', onCopy);
  rep.on('validate:progress', onValidate);
  return () => {
    rep.off('copy:progress', onCopy);
    rep.off('validate:progress', onValidate);
    display.stop();
  };
}

/** The total a bar shows: the estimate, or the rows so far when there is none or it was passed. */
function totalOf(r: Report): number {
  return r.done || r.totalEstimate < r.rows ? r.rows : r.totalEstimate;
}

function bars(output: Output): Display {
  // Made at the first report and ended when no bar is left: a MultiBar writes to the terminal
  // while it lives, and log lines go above its bars meanwhile.
  let multi: cliProgress.MultiBar | null = null;
  const open = new Map<string, cliProgress.SingleBar>();
  const end = () => {
    multi?.stop();
    multi = null;
    output.logThrough(null);
  };
  return {
    update(r) {
      let bar = open.get(r.key);
      if (!bar) {
        if (!multi) {
          const m = new cliProgress.MultiBar(
            { stream: output.stderr, format: '{label} [{bar}] {value}/{total} rows', hideCursor: true, clearOnComplete: false, fps: 5 },
            cliProgress.Presets.shades_classic,
          );
          output.logThrough((line) => m.log(line + '\n'));
          multi = m;
        }
        bar = multi.create(Math.max(totalOf(r), 1), 0, { label: r.label });
        open.set(r.key, bar);
      }
      bar.setTotal(Math.max(totalOf(r), 1));
      bar.update(r.rows, { label: r.label });
      if (r.done) {
        bar.stop();
        open.delete(r.key);
        if (open.size === 0) end();
      }
    },
    stop: end,
  };
}

function lines(output: Output): Display {
  const last = new Map<string, number>();
  return {
    update(r) {
      const seen = last.get(r.key);
      if (!r.done && seen !== undefined && Date.now() - seen < LINE_EVERY_MS) return;
      last.set(r.key, Date.now());
      const of = r.totalEstimate >= 0 && !r.done ? ` of ~${r.totalEstimate}` : '';
      output.log(`${r.label}: ${r.rows}${of} rows${r.done ? ', done' : ''}`);
      if (r.done) last.delete(r.key);
    },
    stop: () => undefined,
  };
}
