// Resources of the composition root: every factory returns `{ value, close }`, and a scope closes what it opened in
// reverse order (an error in one close is logged, the others still run).
import type { Logger } from '../logger.ts';

export interface Resource<T> {
  value: T;
  close(): Promise<void>;
}

export class Scope {
  private readonly closers: Array<() => Promise<unknown> | unknown> = [];

  constructor(private readonly logger?: Logger) {}

  /** Takes ownership of a resource: returns its value and closes it with the scope. */
  add<T>(resource: Resource<T>): T {
    this.closers.push(() => resource.close());
    return resource.value;
  }

  /** Runs `close` when the scope closes (timers, listeners). */
  defer(close: () => Promise<unknown> | unknown): void {
    this.closers.push(close);
  }

  async close(): Promise<void> {
    for (const close of this.closers.splice(0).reverse()) {
      try {
        await close();
      } catch (err) {
        this.logger?.error({ err }, 'shutdown_step_failed');
      }
    }
  }
}

/** Runs `fn` with a scope that is closed afterwards, whatever happens. */
export async function withScope<T>(logger: Logger, fn: (scope: Scope) => Promise<T>): Promise<T> {
  const scope = new Scope(logger);
  try {
    return await fn(scope);
  } finally {
    await scope.close();
  }
}
