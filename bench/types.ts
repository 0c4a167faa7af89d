// One figure of `npm run bench`. Ratios are against a baseline measured in the same run.
export interface Figure {
  /** stable dotted name, e.g. `ledger.append.per_s` */
  name: string;
  value: number;
  unit: string;
  /** name of the baseline figure this is compared with */
  baseline?: string;
  /** value / baseline value (or baseline / value for latencies, so > 1 is always better) */
  ratio?: number;
  /** the target, human readable, e.g. `>= 0.8x baseline` */
  target?: string;
  /** whether the target was met (absent when there is no target) */
  met?: boolean;
}

export interface BenchContext {
  /** scratch directory, removed after the run */
  tmpDir: string;
  /** smaller sizes for a quick run (`npm run bench -- --quick`) */
  quick: boolean;
  log: (line: string) => void;
}

export type BenchSuite = (ctx: BenchContext) => Promise<Figure[]>;
