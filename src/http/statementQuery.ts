// The statement's query parameters, shared by `GET /v1/accounts/:account/statement` and the console's CSV export:
// date range (`since` inclusive, `until` exclusive; a date or an ISO-8601 time) and movement types (comma-separated).
import { z } from 'zod';
import { ACCOUNT_EVENT_TYPES } from '../domain/decode.ts';
import type { StatementFilter } from '../app/statements.ts';
import { describeIssues } from '../contract.ts';
import { HttpError } from './errors.ts';

const instant = z
  .string()
  .regex(/^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?)?$/, 'must be a date (YYYY-MM-DD) or an ISO-8601 time')
  .transform((s, ctx) => {
    const t = Date.parse(/T|\s/.test(s) && !/(Z|[+-]\d\d:?\d\d)$/.test(s) ? `${s}Z` : s); // times without a zone are UTC
    if (Number.isNaN(t)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'is not a valid date' });
    return t;
  });

const types = z
  .string()
  .transform((s) => s.split(',').map((t) => t.trim()).filter(Boolean))
  .pipe(z.array(z.enum(ACCOUNT_EVENT_TYPES)).min(1));

export const statementFilterSchema = z.object({ since: instant.optional(), until: instant.optional(), types: types.optional() });

export const statementPageSchema = statementFilterSchema.extend({
  format: z.enum(['json', 'csv']).default('json'),
  order: z.enum(['asc', 'desc']).default('asc'),
  from: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});

export function parseQuery<S extends z.ZodTypeAny>(schema: S, query: unknown): z.output<S> {
  const q = schema.safeParse(query);
  if (!q.success) throw new HttpError(400, 'invalid_request', describeIssues(q.error));
  return q.data;
}

export function filterOf(q: z.output<typeof statementFilterSchema>): StatementFilter {
  return { ...(q.since !== undefined ? { since: q.since } : {}), ...(q.until !== undefined ? { until: q.until } : {}), ...(q.types ? { types: q.types } : {}) };
}
