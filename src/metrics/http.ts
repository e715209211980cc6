// SPDX-License-Identifier: MIT
// The metrics HTTP listener: GET /metrics (Prometheus text format),
// /healthz (the process answers), /readyz (engine running and config
// applied, else 503).
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ReflectorError } from '../errors';
import type { Logger } from '../log';

export interface MetricsHttpOptions {
  host: string;
  port: number; // 0 = any free port
  registry: Registry;
  ready: () => boolean;
  /** what /readyz says after "not ready: " (cluster mode: etcd unreachable since ...) */
  notReadyReason?: () => string | null;
  log: Logger;
}

export class MetricsHttp {
  private server: http.Server | null = null;
  private bound: AddressInfo | null = null;

  constructor(private readonly opts: MetricsHttpOptions) {}

  /** The bound address (the real port when 0 was asked). */
  get address(): AddressInfo | null {
    return this.bound;
  }

  async start(): Promise<void> {
    if (this.server) throw new ReflectorError('ERR_ENGINE_STATE', 'metrics listener already started');
    const server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new ReflectorError('ERR_INVALID_ARG', `metrics.listen: cannot listen on ${this.opts.host}:${this.opts.port}: ${err.message}`, { cause: err })),
      );
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    server.on('error', (err) => this.opts.log.error('metrics listener error', { err }));
    this.server = server;
    this.bound = server.address() as AddressInfo;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    try {
      switch (url) {
        case '/metrics': {
          const body = await this.opts.registry.metrics();
          res.writeHead(200, { 'content-type': this.opts.registry.contentType }).end(body);
          return;
        }
        case '/healthz':
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
          return;
        case '/readyz': {
          const ok = this.opts.ready();
          const why = ok ? null : this.opts.notReadyReason?.();
          res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : `not ready${why ? `: ${why}` : ''}\n`);
          return;
        }
        default:
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz, /readyz\n');
      }
    } catch (err) {
      this.opts.log.error('metrics scrape failed', { err });
      res.writeHead(500, { 'content-type': 'text/plain' }).end('scrape failed\n');
    }
  }
}
