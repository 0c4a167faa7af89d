// One JSON error shape for the whole API: { error: { code, message, details? }, request_id }.
// `/estimate-body` keeps the original service's `{ detail }` shape (see routes/estimateBody.ts).

export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
  request_id: string;
}
