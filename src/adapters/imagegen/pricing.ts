// The ONE price table for upstream image generation, USD per 1M tokens, and the usage -> cost estimate.
// gpt-image-1.5: the prices the original worker used (original-system.md §5.5), which match OpenAI's published
// token prices for the model. gpt-image-1 / gpt-image-1-mini: OpenAI's published token prices (those models have
// no text output, so text output is priced like text input; it is always 0 tokens in practice).
// Unknown models are priced as DEFAULT_PRICED_MODEL, so the estimate is never silently 0.
import type { GenerationUsage } from '../../domain/events.ts';

export interface TokenPrices {
  textInput: number;
  imageInput: number;
  textOutput: number;
  imageOutput: number;
}

export const PRICES_PER_MILLION: Readonly<Record<string, TokenPrices>> = {
  'gpt-image-1.5': { textInput: 5, imageInput: 8, textOutput: 10, imageOutput: 32 },
  'gpt-image-1': { textInput: 5, imageInput: 10, textOutput: 5, imageOutput: 40 },
  'gpt-image-1-mini': { textInput: 2, imageInput: 2.5, textOutput: 2, imageOutput: 8 },
};
export const DEFAULT_PRICED_MODEL = 'gpt-image-1.5';

export const pricesFor = (model: string): TokenPrices => PRICES_PER_MILLION[model] ?? PRICES_PER_MILLION[DEFAULT_PRICED_MODEL]!;

/** The `usage` object of an images response, as loosely as the API may send it. */
export interface RawImageUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  total_tokens?: number | null;
  input_tokens_details?: { text_tokens?: number | null; image_tokens?: number | null } | null;
  output_tokens_details?: { text_tokens?: number | null; image_tokens?: number | null } | null;
}

const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.round(v) : 0);

/**
 * Splits usage into the six token counts. When a `*_tokens_details` breakdown is missing (BUG-19), the whole
 * total is attributed to the image side (the dominant and dearer one) instead of counting it as 0; when the
 * breakdown is present but does not add up, the remainder also goes to the image side.
 */
export function normalizeUsage(raw: RawImageUsage | null | undefined): GenerationUsage | null {
  if (!raw || typeof raw !== 'object') return null;
  const inputTokens = n(raw.input_tokens);
  const outputTokens = n(raw.output_tokens);
  const textInputTokens = Math.min(n(raw.input_tokens_details?.text_tokens), inputTokens);
  const textOutputTokens = Math.min(n(raw.output_tokens_details?.text_tokens), outputTokens);
  return {
    inputTokens,
    outputTokens,
    textInputTokens,
    imageInputTokens: inputTokens - textInputTokens,
    textOutputTokens,
    imageOutputTokens: outputTokens - textOutputTokens,
  };
}

/** Estimated USD cost, rounded to 6 decimals like the original. */
export function estimateCostUsd(usage: GenerationUsage, model: string): number {
  const p = pricesFor(model);
  const micro =
    usage.textInputTokens * p.textInput +
    usage.imageInputTokens * p.imageInput +
    usage.textOutputTokens * p.textOutput +
    usage.imageOutputTokens * p.imageOutput;
  return Math.round(micro) / 1_000_000;
}
