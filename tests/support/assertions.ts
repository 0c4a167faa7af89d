import { expect } from 'vitest';
import { PipelineError } from '../../src/app/ports/pipeline.ts';

/** Awaits a promise that must reject with a PipelineError, and returns that error for further checks. */
export async function pipelineError(p: Promise<unknown>): Promise<PipelineError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PipelineError);
  return err as PipelineError;
}
