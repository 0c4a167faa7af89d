// The fastify instance: request ids, error mapping, HTTP metrics. Routes are plugins registered by compose/service.ts.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { HTTP_TIMEOUT_DEFAULTS } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { HttpError, type ErrorBody } from './errors.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Longest path parameter: room for `shopper:<store id>:<320-character email>`, percent-encoded. Longer answers 414. */
const MAX_PARAM_LENGTH = 1024;
const newRequestId = () => `req_${randomUUID()}`;
const errorBody = (requestId: string, code: string, message: string, details?: unknown): ErrorBody => ({
  error: { code, message, ...(details !== undefined ? { details } : {}) },
  request_id: requestId,
});

/** Errors the router raises before any route runs; their own messages echo the path, so they get these instead. */
const FRAMEWORK_ERRORS: Record<string, [status: number, code: string, message: string]> = {
  FST_ERR_BAD_URL: [400, 'bad_url', 'the request path is not valid percent-encoding'],
  FST_ERR_MAX_PARAM_LENGTH: [414, 'uri_too_long', `a path segment is longer than ${MAX_PARAM_LENGTH} characters`],
};

/** Errors Node's HTTP parser raises before fastify sees a request (malformed, oversized or too slow). */
const CLIENT_ERRORS: Record<string, [status: number, code: string, message: string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout', 'the request was not received in time'],
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large', 'the request headers are too large'],
};

export interface HttpTimeouts {
  headersMs: number;
  requestMs: number;
  idleMs: number;
  keepAliveMs: number;
}

export interface HttpServerOptions {
  logger: Logger;
  metrics: Metrics;
  bodyLimit?: number;
  /** deadlines for slow clients (HTTP_*_TIMEOUT_MS; see HTTP_TIMEOUT_DEFAULTS) */
  timeouts?: HttpTimeouts;
}

export function createHttpServer({ logger, metrics, bodyLimit = 1024 * 1024, timeouts = HTTP_TIMEOUT_DEFAULTS }: HttpServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Slow clients: the headers and the whole request each have a deadline (answered 408, then cut), a silent socket
    // is closed, and so is an idle keep-alive one. Node checks the request deadlines every connectionsCheckingInterval
    // (30 s by default): a quarter of the shortest deadline, at most 1 s, keeps them close to what is configured.
    requestTimeout: timeouts.requestMs,
    connectionTimeout: timeouts.idleMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    http: {
      headersTimeout: timeouts.headersMs,
      requestTimeout: timeouts.requestMs,
      connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(Math.min(timeouts.headersMs, timeouts.requestMs) / 4))),
    },
    // Request lines are logged once, in onResponse below, with the route and status.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    bodyLimit,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Honour the caller's X-Request-Id when it is sane, so one id follows a request through nginx, logs and events.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : newRequestId();
    },
    // Router-level errors get the one shape and the request id too (no route hooks run for them).
    frameworkErrors: (err, req, reply) => {
      const [status, code, message] = FRAMEWORK_ERRORS[err.code] ?? [500, 'internal_error', 'internal error'];
      if (status >= 500) req.log.error({ err }, 'http_framework_error');
      void (reply as FastifyReply).code(status).header('x-request-id', req.id).send(errorBody(req.id, code, message));
    },
    // Malformed, oversized or too-slow requests never reach the router: answer them in the one shape on the raw socket.
    clientErrorHandler: (err, socket: Socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, code, message] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'bad_request', 'malformed HTTP request'];
      logger.info({ code: err.code, status }, 'http_client_error');
      // As Node does: answer only when no response has started on this socket, then close it.
      const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (socket.writable && !inFlight?.headersSent) {
        const id = newRequestId();
        const body = JSON.stringify(errorBody(id, code, message));
        socket.write(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      socket.destroy();
    },
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    metrics.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.httpSeconds.observe({ method: req.method, route }, seconds);
    if (route !== '/health' && route !== '/health/live' && route !== '/metrics') {
      req.log.info({ method: req.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'http_request');
    }
  });

  // The path is not echoed: an error answer never reflects what the caller sent.
  app.setNotFoundHandler((req, reply) => void reply.code(404).send(errorBody(req.id, 'not_found', `no route matches ${req.method} on this path`)));

  app.setErrorHandler((err: FastifyError | HttpError | Error, req, reply) => {
    if (err instanceof HttpError) {
      for (const [k, v] of Object.entries(err.headers)) void reply.header(k, v);
      return reply.code(err.statusCode).send(errorBody(req.id, err.code, err.message, err.details));
    }
    const fe = err as FastifyError;
    if (fe.validation) return reply.code(400).send(errorBody(req.id, 'invalid_request', fe.message, fe.validation));
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
      return reply.code(fe.statusCode).send(errorBody(req.id, fe.code ?? 'bad_request', fe.message));
    }
    req.log.error({ err }, 'http_unhandled_error');
    return reply.code(500).send(errorBody(req.id, 'internal_error', 'internal error'));
  });

  return app;
}
