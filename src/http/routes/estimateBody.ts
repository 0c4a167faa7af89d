// POST /estimate-body: the storefront size recommendation, wire-compatible with the original service.
// Every error is `{ "detail": "<message>" }` (the original FastAPI shape), set by this plugin's own error handler,
// unlike the rest of the API.
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import {
  ImageUnavailableError,
  NoPoseError,
  NO_POSE_MESSAGE,
  PoseUnavailableError,
  type SizeRecommender,
} from '../../app/sizeRecommendation.ts';
import { validateChart } from '../../domain/sizing.ts';

export interface EstimateBodyDeps {
  recommend: SizeRecommender;
}

const bound = z.number().positive().max(300);
const requestSchema = z
  .object({
    image_url: z
      .string()
      .max(2083)
      .url()
      .refine((u) => /^https?:\/\//i.test(u), 'image_url must be an http(s) URL'),
    height_cm: z.number().min(100).max(250),
    size_chart: z
      .array(
        z
          .object({ size: z.string().min(1).max(20), chest_cm: bound.optional(), waist_cm: bound.optional(), hip_cm: bound.optional() })
          .strict(),
      )
      .optional()
      .superRefine((sizes, ctx) => {
        const problem = sizes && validateChart(sizes);
        if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
      }),
    gender: z.enum(['male', 'female', 'unisex']).optional(),
    fit_preference: z.enum(['tight', 'regular', 'loose']).optional(),
  })
  .strict();

export const DETAIL = {
  badImage: 'Invalid or inaccessible image URL',
  unavailable: 'Pose estimation service is temporarily unavailable',
  internal: 'Failed to estimate body measurements',
} as const;

class DetailError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function estimateBodyRoutes(deps: EstimateBodyDeps): FastifyPluginAsync {
  return async (app) => {
    // Encapsulated: applies to this plugin's routes only (body parsing errors included).
    app.setErrorHandler((err: FastifyError | DetailError, req, reply) => {
      if (err instanceof DetailError) {
        for (const [k, v] of Object.entries(err.headers)) void reply.header(k, v);
        return reply.code(err.statusCode).send({ detail: err.message });
      }
      const status = (err as FastifyError).statusCode;
      if (status && status >= 400 && status < 500) return reply.code(status).send({ detail: err.message });
      req.log.error({ err }, 'estimate_body_unhandled_error');
      return reply.code(500).send({ detail: DETAIL.internal });
    });

    app.post('/estimate-body', async (req, reply) => {
      const parsed = requestSchema.safeParse(req.body);
      if (!parsed.success) {
        const msg = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
        throw new DetailError(400, `Validation failed: ${msg}`);
      }
      const b = parsed.data;
      try {
        const r = await deps.recommend(
          { imageUrl: b.image_url, heightCm: b.height_cm, sizeChart: b.size_chart, gender: b.gender, fitPreference: b.fit_preference },
          req.log,
        );
        return reply.send({
          recommended_size: r.recommendedSize,
          measurements: {
            chest_cm: r.measurements.chestCm,
            waist_cm: r.measurements.waistCm,
            hip_cm: r.measurements.hipCm,
            shoulder_cm: r.measurements.shoulderCm,
          },
          confidence: r.confidence,
          body_type: r.bodyType,
          size_range: { lower: r.sizeRange.lower, upper: r.sizeRange.upper },
          chart: r.chart,
        });
      } catch (err) {
        if (err instanceof ImageUnavailableError) throw new DetailError(400, DETAIL.badImage);
        if (err instanceof NoPoseError) throw new DetailError(422, err.missing.length ? err.message : NO_POSE_MESSAGE);
        if (err instanceof PoseUnavailableError) {
          throw new DetailError(503, DETAIL.unavailable, { 'retry-after': String(err.retryAfterSeconds) });
        }
        throw err;
      }
    });
  };
}
