// The fastify instance: request ids, error mapping, HTTP metrics. Routes are plugins registered by compose/service.ts.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { HttpError, type ErrorBody } from './errors.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface HttpServerOptions {
  logger: Logger;
  metrics: Metrics;
  bodyLimit?: number;
}

export function createHttpServer({ logger, metrics, bodyLimit = 1024 * 1024 }: HttpServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Request lines are logged once, in onResponse below, with the route and status.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    bodyLimit,
    // Honour the caller's X-Request-Id when it is sane, so one id follows a request through nginx, logs and events.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : `req_${randomUUID()}`;
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

  app.setNotFoundHandler((req, reply) => {
    const body: ErrorBody = { error: { code: 'not_found', message: `no route for ${req.method} ${req.url.split('?')[0]}` }, request_id: req.id };
    void reply.code(404).send(body);
  });

  app.setErrorHandler((err: FastifyError | HttpError | Error, req, reply) => {
    if (err instanceof HttpError) {
      for (const [k, v] of Object.entries(err.headers)) void reply.header(k, v);
      const body: ErrorBody = { error: { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) }, request_id: req.id };
      return reply.code(err.statusCode).send(body);
    }
    const fe = err as FastifyError;
    if (fe.validation) {
      return reply.code(400).send({ error: { code: 'invalid_request', message: fe.message, details: fe.validation }, request_id: req.id });
    }
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
      return reply.code(fe.statusCode).send({ error: { code: fe.code ?? 'bad_request', message: fe.message }, request_id: req.id });
    }
    req.log.error({ err }, 'http_unhandled_error');
    return reply.code(500).send({ error: { code: 'internal_error', message: 'internal error' }, request_id: req.id });
  });

  return app;
}
