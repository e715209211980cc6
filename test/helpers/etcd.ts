// SPDX-License-Identifier: MIT
// A real etcd server (Debian's etcd-server, /usr/bin/etcd) for the cluster
// tests: its own data folder in a temp folder, its client URL on an address
// inside a testbed namespace (where Reflector nodes reach it), and a Unix
// socket in that folder, which the test process (in the root namespace)
// reaches too. Peers talk over a Unix socket: a one-member cluster.
//
// stop() and start() stop and restart the same member on the same data: an
// etcd outage that leases survive (etcd extends every lease when it starts).
import { spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Testbed } from './testbed';

export const ETCD_BIN = '/usr/bin/etcd';

/** Why this host cannot run etcd tests, or null. */
export function etcdUnavailable(): string | null {
  if (!fs.existsSync(ETCD_BIN)) return `${ETCD_BIN} is missing (apt-get install etcd-server)`;
  const r = spawnSync(ETCD_BIN, ['--version'], { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0) return `${ETCD_BIN} --version failed: ${r.stderr || r.error?.message}`;
  return null;
}

export class EtcdServer {
  readonly dir: string;
  /** the client URL inside the testbed (what nodes dial) */
  readonly url: string;
  /** the same server through a Unix socket (what the test process dials) */
  readonly local: string;
  private child: ChildProcess | null = null;
  private log = '';

  private constructor(
    private readonly tb: Testbed,
    private readonly host: string,
    port: number,
  ) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-etcd-'));
    this.url = `http://${tb.addr(host)}:${port}`;
    this.local = `unix://${path.join(this.dir, `localhost:${port}`)}`;
  }

  /** Start etcd in `host`'s namespace; t.teardown (via the testbed's own) stops it. */
  static async start(tb: Testbed, host: string, t?: { teardown(fn: () => unknown): void }, port = 2379): Promise<EtcdServer> {
    const e = new EtcdServer(tb, host, port);
    t?.teardown(() => e.destroy());
    await e.start();
    return e;
  }

  async start(): Promise<void> {
    if (this.child) return;
    const port = this.url.split(':').pop();
    const argv = [
      ETCD_BIN,
      '--name', 'rf',
      '--data-dir', path.join(this.dir, 'data'),
      '--listen-client-urls', `${this.url},unix://localhost:${port}`,
      '--advertise-client-urls', this.url,
      '--listen-peer-urls', `unix://localhost:${Number(port) + 1}`,
      '--initial-advertise-peer-urls', `http://localhost:${Number(port) + 1}`,
      '--initial-cluster', `rf=http://localhost:${Number(port) + 1}`,
      // a small test cluster: fast elections, frequent progress
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      '--log-level', 'warn',
    ];
    const child = this.tb.spawn(this.host, argv, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.log = (this.log + d).slice(-20000)));
    this.child = child;
    child.on('exit', () => {
      if (this.child === child) this.child = null;
    });
    const deadline = Date.now() + 15000;
    const sock = this.local.slice('unix://'.length);
    for (;;) {
      if (!this.child) throw new Error(`etcd exited at start:\n${this.log}`);
      if (fs.existsSync(sock) && (await this.healthy())) return;
      if (Date.now() > deadline) throw new Error(`etcd not ready after 15 s:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stop the member (SIGTERM) and wait for it to exit. */
  async stop(): Promise<void> {
    const c = this.child;
    if (!c) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** etcd's own log so far (for failure messages). */
  get stderr(): string {
    return this.log;
  }

  private healthy(): Promise<boolean> {
    // the unix socket answers HTTP too: GET /health
    const sock = this.local.slice('unix://'.length);
    return new Promise((resolve) => {
      const req = http.get({ socketPath: sock, path: '/health', timeout: 1000 }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(res.statusCode === 200 && body.includes('true')));
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => {
        req.destroy();
        resolve(false);
      });
    });
  }
}
