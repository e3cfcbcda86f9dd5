/** Work that follows runs (delta pruning, run records): tracked so that stop() can wait for it. */
export class BackgroundTasks {
  readonly #pending = new Set<Promise<void>>();

  /** Runs `task` now; its failure goes to `onError`, never to the caller. Returns its promise. */
  run(task: () => Promise<void>, onError: (err: Error) => void): Promise<void> {
    const p = task().catch(onError);
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
    return p;
  }

  /** Resolves when everything started so far has finished. */
  async drain(): Promise<void> {
    await Promise.all(this.#pending);
  }
}

/** Whether every promise settles within `ms` (it keeps waiting for none of them after that). */
export async function settlesWithin(promises: Promise<unknown>[], ms: number): Promise<boolean> {
  if (promises.length === 0) return true;
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    Promise.allSettled(promises).then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return settled;
}
