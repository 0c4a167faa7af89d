// Deterministic stand-ins for the OUTSIDE world of the saga (image download, image model, result storage), scriptable
// per generation. They implement the ports of src/app/ports/pipeline.ts; the saga under test is the real one.
import {
  PipelineError,
  type CallContext,
  type GeneratedImage,
  type ImageGenerator,
  type InputImages,
  type PreparedImage,
  type ResultStore,
} from '../../src/app/ports/pipeline.ts';

/**
 * What the upstream does on one generate call. `slow`: succeeds, but only after the clock moved past the lease (a run
 * that outlived its lease). `shutdown`: the worker is asked to stop while the call is in flight.
 */
export type UpstreamOutcome = 'ok' | '429' | '5xx' | 'moderation' | 'timeout' | 'slow' | 'shutdown';

/** Which GenerationFailed code an outcome may end in. */
export const FAILURE_CODE: Partial<Record<UpstreamOutcome, string>> = {
  '429': 'rate_limited',
  '5xx': 'upstream_error',
  moderation: 'moderation_blocked',
  timeout: 'upstream_timeout',
};

export class StaticInputImages implements InputImages {
  async prepare(urls: readonly string[], _ctx: CallContext): Promise<{ images: PreparedImage[]; downloadMs: number; resizeMs: number }> {
    return {
      images: urls.map((_, i) => ({ filename: i === 0 ? 'model.jpg' : `image_${i}.jpg`, bytes: Buffer.from([0xff, 0xd8, i]), contentType: 'image/jpeg' as const })),
      downloadMs: 0,
      resizeMs: 0,
    };
  }
}

export interface ScriptHooks {
  /** called by `slow` */
  advancePastLease(): void;
  /** called by `shutdown` */
  requestShutdown(): void;
}

/**
 * The prompt of a request is its script key (the property suite sets prompt = sessionId). Each call consumes the next
 * outcome of that key's script; an empty script succeeds. Every outcome actually produced is recorded.
 */
export class ScriptedGenerator implements ImageGenerator {
  readonly provider = 'scripted';
  private readonly scripts = new Map<string, UpstreamOutcome[]>();
  readonly produced = new Map<string, UpstreamOutcome[]>();

  constructor(private readonly hooks: ScriptHooks) {}

  script(key: string, outcomes: UpstreamOutcome[]): void {
    this.scripts.set(key, [...outcomes]);
  }

  async generate(input: { images: PreparedImage[]; prompt: string }, _ctx: CallContext): Promise<GeneratedImage> {
    const outcome = this.scripts.get(input.prompt)?.shift() ?? 'ok';
    const list = this.produced.get(input.prompt) ?? [];
    list.push(outcome);
    this.produced.set(input.prompt, list);
    switch (outcome) {
      case 'slow':
        this.hooks.advancePastLease();
        break;
      case 'shutdown':
        this.hooks.requestShutdown();
        throw new Error('aborted by shutdown');
      case '429':
        throw new PipelineError('rate_limited', 'upstream 429', { retryAfterMs: 10_000 });
      case '5xx':
        throw new PipelineError('upstream_error', 'upstream 500');
      case 'moderation':
        throw new PipelineError('moderation_blocked', 'blocked by the safety system');
      case 'timeout':
        throw new PipelineError('upstream_timeout', 'upstream did not answer in time');
      case 'ok':
        break;
    }
    return { bytes: Buffer.from(`image:${input.prompt}`), contentType: 'image/png', provider: this.provider, usage: null, costUsd: 0.01 };
  }
}

/** Results kept in memory; upsert semantics like the real stores. */
export class MemoryResultStore implements ResultStore {
  readonly kind = 'memory';
  readonly objects = new Map<string, { bytes: Buffer; contentType: string }>();
  async put(path: string, bytes: Buffer, contentType: string, _ctx: CallContext): Promise<void> {
    this.objects.set(path, { bytes, contentType });
  }
  async signedUrl(path: string, ttlSeconds: number, _ctx: CallContext): Promise<string> {
    return `memory://${path}?ttl=${ttlSeconds}`;
  }
}
