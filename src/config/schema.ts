// SPDX-License-Identifier: MIT
// The configuration schema: the single owner of every configuration key, its
// default, its documentation line and its validation. config/reflector.yaml
// documents the same keys (test/config/shipped.test.ts checks that it names
// every key in SCHEMA with its default).
import type { Endpoint, Prefix } from '../net/address';
import type { NameKind } from '../names';
import { DEFAULT_REGION_PARAMS as R } from '../region/params';
import { MAX_PREFIXES, MAX_RELAYS } from '../relay/policy';

export type FieldKind =
  | { t: 'string'; nonEmpty?: boolean }
  | { t: 'name'; of: NameKind } // src/names.ts: the one name validator
  | { t: 'int'; min: number; max: number; pow2?: boolean }
  | { t: 'bool' }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'endpoint'; allowPortZero?: boolean } // "ADDR:PORT" / "[v6]:PORT"
  | { t: 'prefix' } // "ADDR/LEN"
  | { t: 'path' } // relative to the config file's folder
  | { t: 'map'; fields: Readonly<Record<string, Field>> }
  | { t: 'list'; of: FieldKind; minItems?: number; maxItems?: number; scalarOk?: boolean }; // scalarOk: "x" means ["x"]

export interface Field {
  readonly kind: FieldKind;
  /** Used when the key is absent. `undefined` with required=false means "no default: null". */
  readonly default?: unknown;
  readonly required?: boolean;
  /** null is accepted (and means "off"/"none"). */
  readonly nullable?: boolean;
  readonly doc: string;
}

const pow2 = (min: number, max: number): FieldKind => ({ t: 'int', min, max, pow2: true });

/** The engine's largest rates (rf_policy_relay_limit: pps is a uint32, bytes_per_s a uint64 kept below 2^53 here). */
export const MAX_PPS = 0xffffffff;
export const MAX_BPS = Number.MAX_SAFE_INTEGER;

export const RELAY_FIELDS: Readonly<Record<string, Field>> = {
  name: { kind: { t: 'name', of: 'relay' }, required: true, doc: 'unique relay name (metrics label relay=)' },
  listen: { kind: { t: 'endpoint' }, required: true, doc: 'ingress <address, UDP port> P the relay owns (an address of the engine\'s namespace)' },
  sources: {
    kind: { t: 'list', of: { t: 'prefix' }, minItems: 1, maxItems: MAX_PREFIXES },
    required: true,
    doc: 'source prefixes allowed to send to P (required: a relay is not an open amplifier)',
  },
  subscribers: { kind: { t: 'list', of: { t: 'endpoint' } }, default: [], doc: 'outputs ADDR:PORT (split when more than one)' },
  allow_any_source: { kind: { t: 'bool' }, default: false, doc: 'accept 0.0.0.0/0 or ::/0 in sources (anyone may send: an open relay)' },
  max_pps: { kind: { t: 'int', min: 0, max: MAX_PPS }, default: 0, doc: 'packets per second the relay takes in; more are dropped and counted; 0 = no limit' },
  max_bps: { kind: { t: 'int', min: 0, max: MAX_BPS }, default: 0, doc: 'bits per second (frame bytes x 8) the relay takes in; more are dropped and counted; 0 = no limit' },
  ssm: {
    kind: { t: 'bool' }, nullable: true, default: null,
    doc: 'listen is a multicast group: true = source-specific join of each source (single hosts only), false = any-source join; null = true when every source is a /32 or /128',
  },
  multicast_ttl: { kind: { t: 'int', min: 1, max: 255 }, default: 16, doc: 'TTL / hop limit of the relay\'s multicast outputs (unicast outputs keep 64)' },
};

export const SESSION_FIELDS: Readonly<Record<string, Field>> = {
  name: { kind: { t: 'name', of: 'session' }, required: true, doc: 'unique session name (metrics label session=)' },
  file: { kind: { t: 'path' }, required: true, doc: 'media file, relative to this file\'s folder, inside media_root' },
  to: { kind: { t: 'endpoint' }, required: true, doc: 'destination ADDR:PORT' },
  format: { kind: { t: 'enum', values: ['mpegts', 'rtp', 'pcap'] }, default: 'mpegts', doc: 'mpegts | rtp | pcap' },
  loop: { kind: { t: 'bool' }, default: false, doc: 'start again at the end of the file' },
};

/** Cluster mode (docs/cluster.md): where a relay or session may run, one node name or an ordered list. */
const PLACEMENT_KIND: FieldKind = { t: 'list', of: { t: 'string', nonEmpty: true }, minItems: 1, scalarOk: true };

/** A relay of a cluster's desired state (reflector ctl --etcd URL apply): the same keys plus its node(s). */
export const CLUSTER_RELAY_FIELDS: Readonly<Record<string, Field>> = {
  ...RELAY_FIELDS,
  node: { kind: PLACEMENT_KIND, required: true, doc: 'the node that owns the listen address, or an ordered list (the first live one relays)' },
};

/** A session of a cluster's desired state: the same keys plus an optional node (or ordered list). */
export const CLUSTER_SESSION_FIELDS: Readonly<Record<string, Field>> = {
  ...SESSION_FIELDS,
  node: { kind: PLACEMENT_KIND, nullable: true, default: null, doc: 'the node(s) to run on, in order; null = rendezvous hashing over the live nodes' },
};

export const SCHEMA: Readonly<Record<string, Field>> = {
  engine: {
    kind: {
      t: 'map',
      fields: {
        interface: { kind: { t: 'name', of: 'interface' }, default: 'lo', doc: 'the NIC the engine owns' },
        netns: { kind: { t: 'name', of: 'netns' }, nullable: true, default: null, doc: 'network namespace name (under /run/netns), null = current' },
        backend: { kind: { t: 'enum', values: ['afpacket', 'afxdp', 'null'] }, default: 'afpacket', doc: 'afpacket | afxdp (TX thread on an AF_XDP socket, copy mode) | null (discards every frame)' },
        workers: { kind: { t: 'int', min: 1, max: 63 }, default: 2, doc: 'Piscina pool size (one region lane each)' },
        lateness_limit_ms: { kind: { t: 'int', min: 0, max: 60000 }, default: 50, doc: 'packets later than this are dropped and counted; 0 = never' },
        drain_ms: { kind: { t: 'int', min: 0, max: 60000 }, default: 500, doc: 'on SIGTERM, packets due within this window still go out' },
        cpu_tx: { kind: { t: 'int', min: -1, max: 1023 }, default: -1, doc: 'CPU the TX thread is pinned to; -1 = any' },
        cpu_rx: { kind: { t: 'int', min: -1, max: 1023 }, default: -1, doc: 'CPU the RX (relay) thread is pinned to; -1 = any' },
        tx_window_us: { kind: { t: 'int', min: 0, max: 1000 }, default: 0, doc: 'a flush also takes packets due within this many us (they leave up to that early); 0 = each at its time' },
        tx_priority: { kind: { t: 'int', min: 0, max: 99 }, default: 0, doc: 'SCHED_FIFO priority of the TX thread (1..99); 0 = ordinary scheduling' },
        relay_tier: { kind: { t: 'enum', values: ['kernel', 'user'] }, default: 'kernel', doc: 'kernel (relay in the engine\'s tc ingress program where the kernel allows it) | user (relay in the RX thread); docs/kernel-tier.md' },
        kernel_orphan_s: { kind: { t: 'int', min: 1, max: 86400 }, default: 30, doc: 'watchdog: with no heartbeat from a server for this long the tc program stops relaying and passes traffic to the kernel' },
        region: {
          kind: {
            t: 'map',
            fields: {
              // the ranges of the engine's rf_region_layout() (engine/src/region.c)
              slots_per_lane: { kind: pow2(16, 65536), default: R.slotsPerLane, doc: 'packet pool slots per lane (power of two)' },
              slot_size: { kind: pow2(512, 16384), default: R.slotSize, doc: 'bytes per slot (power of two, >= 512)' },
              submit_entries: { kind: pow2(16, 65536), default: R.submitEntries, doc: 'descriptors per lane ring (power of two)' },
              dests_per_lane: { kind: { t: 'int', min: 1, max: 65536 }, default: R.destsPerLane, doc: 'destination entries per lane' },
              policy_entries: { kind: pow2(16, 4096), default: R.policyEntries, doc: 'policy ring entries (power of two)' },
              event_entries: { kind: pow2(16, 65536), default: R.eventEntries, doc: 'event ring entries (power of two)' },
              max_streams: { kind: { t: 'int', min: 1, max: 1 << 20 }, default: R.maxStreams, doc: 'session stream counters' },
              max_outputs: { kind: { t: 'int', min: 1, max: 1 << 20 }, default: R.maxOutputs, doc: 'relay output counters' },
            },
          },
          default: {},
          doc: 'shared region sizes',
        },
      },
    },
    default: {},
    doc: 'the packet engine',
  },
  metrics: {
    kind: {
      t: 'map',
      fields: {
        listen: {
          kind: { t: 'endpoint', allowPortZero: true },
          nullable: true,
          default: '127.0.0.1:9464',
          doc: 'GET /metrics, /healthz, /readyz; null = off; port 0 = any free port',
        },
      },
    },
    default: {},
    doc: 'Prometheus endpoint',
  },
  control: {
    kind: {
      t: 'map',
      fields: {
        socket: { kind: { t: 'path' }, nullable: true, default: '/run/reflector/control.sock', doc: 'Unix socket of the gRPC service reflector.v1.Control, null = off' },
        socket_mode: { kind: { t: 'string', nonEmpty: true }, default: '0660', doc: 'mode of the socket, octal in quotes ("0660"), set before anyone can connect' },
        socket_group: { kind: { t: 'string', nonEmpty: true }, nullable: true, default: null, doc: 'group of the socket (a name or a gid), set before anyone can connect; null = the server\'s' },
        tcp: { kind: { t: 'endpoint', allowPortZero: true }, nullable: true, default: null, doc: 'optional TCP listener ADDR:PORT (needs token; TLS unless loopback)' },
        token: { kind: { t: 'string', nonEmpty: true }, nullable: true, default: null, doc: 'bearer token every TCP call carries (authorization: Bearer TOKEN)' },
        tls: {
          kind: {
            t: 'map',
            fields: {
              cert: { kind: { t: 'path' }, nullable: true, default: null, doc: 'PEM certificate chain of the TCP listener' },
              key: { kind: { t: 'path' }, nullable: true, default: null, doc: 'PEM private key of the certificate' },
              client_ca: { kind: { t: 'path' }, nullable: true, default: null, doc: 'PEM CA: when set, TCP clients must present a certificate it signed' },
            },
          },
          default: {},
          doc: 'TLS of the TCP listener',
        },
        max_message_bytes: { kind: { t: 'int', min: 1024, max: 16 << 20 }, default: 65536, doc: 'largest request message accepted (RESOURCE_EXHAUSTED above)' },
        max_connections: { kind: { t: 'int', min: 1, max: 4096 }, default: 64, doc: 'connections per listener; more wait in the kernel backlog' },
        max_streams: { kind: { t: 'int', min: 1, max: 1024 }, default: 16, doc: 'concurrent calls (Watch streams included) per connection' },
        idle_timeout_ms: { kind: { t: 'int', min: 100, max: 86400000 }, default: 120000, doc: 'a connection with no call open this long is closed' },
        request_timeout_ms: { kind: { t: 'int', min: 1, max: 600000 }, default: 10000, doc: 'a request taking longer gets ERR_TIMEOUT' },
      },
    },
    default: {},
    doc: 'control API',
  },
  log: {
    kind: { t: 'map', fields: { level: { kind: { t: 'enum', values: ['debug', 'info', 'warn', 'error'] }, default: 'info', doc: 'debug | info | warn | error' } } },
    default: {},
    doc: 'JSON log lines on stderr',
  },
  media_root: {
    kind: { t: 'path' },
    nullable: true,
    default: null,
    doc: 'folder every session file must be inside (symlinks resolved), config and control API alike; null = this file\'s folder',
  },
  cluster: {
    kind: {
      t: 'map',
      fields: {
        etcd: { kind: { t: 'list', of: { t: 'string', nonEmpty: true } }, default: [], doc: 'etcd client URLs (http://HOST:PORT, https://HOST:PORT, unix://PATH); [] = no cluster' },
        node: { kind: { t: 'string', nonEmpty: true }, nullable: true, default: null, doc: 'this node\'s name in the cluster; null = the host name' },
        prefix: { kind: { t: 'string', nonEmpty: true }, default: '/reflector/', doc: 'key prefix of the cluster\'s state in etcd (ends with /)' },
        lease_s: { kind: { t: 'int', min: 2, max: 300 }, default: 10, doc: 'node lease TTL: a dead node\'s relays and sessions move after about this long' },
        checkpoint_ms: { kind: { t: 'int', min: 100, max: 1000 }, default: 1000, doc: 'how often session positions are written to etcd' },
        tls: {
          kind: {
            t: 'map',
            fields: {
              ca: { kind: { t: 'path' }, nullable: true, default: null, doc: 'PEM CA of the etcd servers (https:// URLs); null = the system roots' },
              cert: { kind: { t: 'path' }, nullable: true, default: null, doc: 'PEM client certificate (etcd --client-cert-auth)' },
              key: { kind: { t: 'path' }, nullable: true, default: null, doc: 'PEM key of the client certificate' },
            },
          },
          default: {},
          doc: 'TLS to etcd',
        },
        auth: {
          kind: {
            t: 'map',
            fields: {
              username: { kind: { t: 'string', nonEmpty: true }, nullable: true, default: null, doc: 'etcd user; null = no authentication' },
              password_file: { kind: { t: 'path' }, nullable: true, default: null, doc: 'file holding the user\'s password (first line)' },
            },
          },
          default: {},
          doc: 'etcd user authentication',
        },
      },
    },
    default: {},
    doc: 'cluster mode: relays and sessions live in etcd (docs/cluster.md)',
  },
  relays: { kind: { t: 'list', of: { t: 'map', fields: RELAY_FIELDS }, maxItems: MAX_RELAYS }, default: [], doc: 'live relays (redirect / split)' },
  sessions: { kind: { t: 'list', of: { t: 'map', fields: SESSION_FIELDS } }, default: [], doc: 'on-demand sessions (timed transmit)' },
};

/**
 * A cluster's desired state (a file given to `reflector ctl --etcd URL
 * apply`, a value under the cluster's prefix): relays and sessions with
 * their placement. Validated by the same walk as a server config.
 */
export const DESIRED_SCHEMA: Readonly<Record<string, Field>> = {
  ...SCHEMA,
  relays: { kind: { t: 'list', of: { t: 'map', fields: CLUSTER_RELAY_FIELDS } }, default: [], doc: 'relays with their node(s)' },
  sessions: { kind: { t: 'list', of: { t: 'map', fields: CLUSTER_SESSION_FIELDS } }, default: [], doc: 'sessions with their node(s), if any' },
};

/** Every key path with its default, e.g. ["engine.workers", 2] (lists' item keys as "relays[].name"). */
export function defaultsTable(): Array<[string, unknown, Field]> {
  const out: Array<[string, unknown, Field]> = [];
  const walk = (fields: Readonly<Record<string, Field>>, prefix: string): void => {
    for (const [key, f] of Object.entries(fields)) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (f.kind.t === 'map') walk(f.kind.fields, path);
      else if (f.kind.t === 'list' && f.kind.of.t === 'map') {
        out.push([path, f.default, f]);
        walk(f.kind.of.fields, `${path}[]`);
      } else out.push([path, f.default, f]);
    }
  };
  walk(SCHEMA, '');
  return out;
}

// ------------------------------------------------------------ the result --


export interface RegionSizes {
  slotsPerLane: number;
  slotSize: number;
  submitEntries: number;
  destsPerLane: number;
  policyEntries: number;
  eventEntries: number;
  maxStreams: number;
  maxOutputs: number;
}

export interface RelayConfig {
  name: string;
  listen: Endpoint;
  sources: Prefix[];
  subscribers: Endpoint[];
  /** 0.0.0.0/0 or ::/0 may be in sources */
  allowAnySource?: boolean;
  /** ingress limits, 0 = none (bits per second for maxBps) */
  maxPps?: number;
  maxBps?: number;
  /** multicast listen: source-specific join (undefined: derived from sources) */
  ssm?: boolean;
  /** TTL / hop limit of multicast outputs (default 16) */
  multicastTtl?: number;
  /** cluster desired state only: the node(s) that may own it, in order */
  node?: string[];
}

export type SessionFormat = 'mpegts' | 'rtp' | 'pcap';

export interface SessionConfig {
  name: string;
  /** absolute path */
  file: string;
  to: Endpoint;
  format: SessionFormat;
  loop: boolean;
  /** cluster desired state only: the node(s) to run on, in order; absent = rendezvous hashing */
  node?: string[];
  /** where to start in the file (a session moved to another node resumes from its checkpoint); absent = the beginning */
  resume?: SessionPosition;
}

/** A session's place in its media file: the next packet of pass `pass` (src/media/session-media.ts). */
export interface SessionPosition {
  packet: number;
  pass: number;
}

export interface ClusterConfig {
  /** etcd client URLs; empty = not a cluster node */
  etcd: string[];
  /** this node's name (the host name unless set) */
  node: string;
  prefix: string;
  leaseS: number;
  checkpointMs: number;
  tls: { ca: string | null; cert: string | null; key: string | null };
  auth: { username: string | null; passwordFile: string | null };
}

export interface Config {
  /** absolute path of the file this came from ('' when parsed from text) */
  file: string;
  /** absolute folder every session file is inside (media_root, default the file's folder) */
  mediaRoot: string;
  engine: {
    interface: string;
    netns: string | null;
    backend: 'afpacket' | 'afxdp' | 'null';
    workers: number;
    latenessLimitMs: number;
    drainMs: number;
    cpuTx: number;
    cpuRx: number;
    txPriority: number;
    txWindowUs: number;
    relayTier: 'kernel' | 'user';
    kernelOrphanS: number;
    region: RegionSizes;
  };
  metrics: { listen: Endpoint | null };
  control: {
    socket: string | null;
    tcp: Endpoint | null;
    token: string | null;
    /** control.socket_mode, parsed from octal */
    socketMode: number;
    socketGroup: string | null;
    tls: { cert: string | null; key: string | null; clientCa: string | null };
    maxMessageBytes: number;
    maxConnections: number;
    maxStreams: number;
    idleTimeoutMs: number;
    requestTimeoutMs: number;
  };
  log: { level: 'debug' | 'info' | 'warn' | 'error' };
  cluster: ClusterConfig;
  relays: RelayConfig[];
  sessions: SessionConfig[];
}
