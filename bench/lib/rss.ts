/** Samples the resident set size of this process at a fixed interval. */
export class RssSampler {
  readonly baseline: number;
  #peak: number;
  #timer: NodeJS.Timeout | null = null;
  #samples = 0;

  constructor(readonly intervalMs = 50) {
    this.baseline = process.memoryUsage().rss;
    this.#peak = this.baseline;
  }

  start(): this {
    this.#timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }

  sample(): void {
    const rss = process.memoryUsage().rss;
    this.#samples++;
    if (rss > this.#peak) this.#peak = rss;
  }

  /** Stops sampling; returns baseline and peak in MB. */
  stop(): { baselineMb: number; peakMb: number; samples: number } {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.sample();
    return { baselineMb: this.baseline / 2 ** 20, peakMb: this.#peak / 2 ** 20, samples: this.#samples };
  }
}
