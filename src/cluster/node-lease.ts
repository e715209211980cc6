// SPDX-License-Identifier: MIT
// A node's lease and its keep-alive. The node's registration and every
// placement it holds are bound to this one lease, so they all vanish
// together when the node stops renewing it.
//
// Why not etcd3's Lease class: it gives a lease up ("lost") by itself after
// two TTLs without an answer, e.g. during an etcd outage, and cannot renew it
// afterwards. But etcd keeps leases across its own restart (a new leader
// extends every lease by its TTL), so after an outage the same lease is
// still ours and still holds every placement: giving it up would move every
// relay and session of every node at once. So the keep-alive here runs on
// etcd3's LeaseClient stream and only believes etcd: a lease is gone when
// etcd answers TTL 0 (emit 'expired'), never because of silence.
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../log';

type KeepAliveStream = Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>>;

export class NodeLease extends EventEmitter {
  private leaseId: string | null = null;
  private lastAck = 0;
  private stopped = false;
  private stream: KeepAliveStream | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly client: Etcd3,
    readonly ttlS: number,
    private readonly log: Logger,
  ) {
    super();
  }

  /** The lease ID (decimal, as etcd3 gives int64s); null before grant(). */
  get id(): string | null {
    return this.leaseId;
  }

  /** etcd acknowledged a keep-alive within the last TTL. */
  get healthy(): boolean {
    return this.leaseId !== null && Date.now() - this.lastAck < this.ttlS * 1000;
  }

  /** Ms since etcd last acknowledged the lease. */
  get silentMs(): number {
    return Date.now() - this.lastAck;
  }

  /** Grant a new lease (a previous one is abandoned: it expires by itself). */
  async grant(): Promise<string> {
    const r = await this.client.leaseClient.leaseGrant({ TTL: this.ttlS, ID: 0 });
    this.leaseId = r.ID;
    this.lastAck = Date.now();
    this.log.info('cluster lease granted', { lease: r.ID, ttl_s: Number(r.TTL) });
    return r.ID;
  }

  /** Keep the lease alive until stop(): one write every TTL/3 on one stream, reopened when it breaks. */
  start(): void {
    if (this.running) return;
    this.stopped = false;
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.stream?.cancel();
    await this.running;
    this.running = null;
  }

  /** Stop and revoke: etcd deletes the registration and every placement at once (an orderly leave). */
  async revoke(): Promise<void> {
    await this.stop();
    if (this.leaseId === null) return;
    await this.client.leaseClient.leaseRevoke({ ID: this.leaseId }).catch((err: Error) => this.log.warn('cluster lease revoke failed (it expires by itself)', { err }));
  }

  private async loop(): Promise<void> {
    let backoff = 100;
    while (!this.stopped) {
      const id = this.leaseId;
      if (id === null) return;
      try {
        const stream = await this.client.leaseClient.leaseKeepAlive();
        this.stream = stream;
        if (this.stopped) break;
        await new Promise<void>((resolve) => {
          const send = (): void => {
            // a stream that stayed silent for two writes is dead even if TCP says otherwise
            if (Date.now() - this.lastAck > (this.ttlS * 1000 * 2) / 3 + 500) {
              stream.cancel();
              return;
            }
            stream.write({ ID: id });
          };
          this.timer = setInterval(send, (this.ttlS * 1000) / 3);
          stream.write({ ID: id });
          stream.on('data', (res) => {
            backoff = 100;
            if (res.TTL === '0') {
              this.log.warn('cluster lease expired (etcd says so): this node\'s placements are gone', { lease: id });
              this.emit('expired', id);
              stream.cancel();
              return;
            }
            const was = this.healthy;
            this.lastAck = Date.now();
            if (!was) this.emit('healthy');
          });
          stream.on('error', () => resolve());
          stream.on('end', () => resolve());
        });
      } catch {
        // the stream could not be opened: etcd unreachable; retried below
      }
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      this.stream = null;
      if (this.stopped || this.leaseId !== id) continue;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 1000);
    }
  }
}
