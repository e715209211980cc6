// SPDX-License-Identifier: MIT
// Parse and validate configuration text against SCHEMA (src/config/schema.ts).
// Every problem carries the line:column of the YAML node it is about and the
// key path ("relays[0].subscribers[2]"), so `reflector check-config` prints
// one actionable line per problem, like a compiler.
import { DEFAULT_MULTICAST_TTL, groupProblem, isMulticast, sourceGroupProblem, ssmOf } from '../net/multicast';
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { parseEndpoint, parsePrefix, formatEndpoint, type Endpoint } from '../net/address';
import { ReflectorError } from '../errors';
import { mediaPathProblem } from '../media/root';
import { nameProblem } from '../names';
import { computeLayout, MAX_REGION } from '../region/layout';
import { MAX_OUTPUTS } from '../relay/policy';
import { DESIRED_SCHEMA, SCHEMA, type Config, type Field, type FieldKind } from './schema';
import { anySourceProblem } from '../relay/guards';
import { didYouMean } from './suggest';

export interface Problem {
  file: string;
  line: number; // 1-based
  column: number; // 1-based
  path: string; // key path, "" for the whole document
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.path || '(document)'}: ${p.message}`;
}

export interface ParseResult {
  config: Config | null; // null when there is any problem
  problems: Problem[];
}

export interface ParseOptions {
  /** check that media and key files exist (default true) */
  checkFiles?: boolean;
  /** a cluster's desired state (src/cluster/desired.ts): relays and sessions carry `node`, relays may feed relays */
  desired?: boolean;
}

/** Validate YAML text. `file` names the source in problems and anchors relative paths. */
export function parseConfig(text: string, file: string, opts: ParseOptions = {}): ParseResult {
  const v = new Validator(text, file, opts.checkFiles ?? true, opts.desired ?? false);
  return v.run();
}

/** Read and validate a file; throws ReflectorError('ERR_CONFIG') listing every problem. */
export function loadConfig(file: string, opts: { checkFiles?: boolean } = {}): Config {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ReflectorError('ERR_CONFIG', `cannot read config file ${abs}: ${(err as Error).message}`, { cause: err });
  }
  const r = parseConfig(text, abs, opts);
  if (!r.config) throw configError(r.problems);
  return r.config;
}

export class ConfigError extends ReflectorError {
  readonly problems: Problem[];
  constructor(problems: Problem[]) {
    super('ERR_CONFIG', problems.map(formatProblem).join('\n'));
    this.problems = problems;
  }
}

function configError(problems: Problem[]): ConfigError {
  return new ConfigError(problems);
}

type Raw = Record<string, unknown>;

class Validator {
  private readonly lc = new LineCounter();
  private readonly problems: Problem[] = [];
  private readonly nodes = new Map<string, Node>();
  private readonly dir: string;
  private readonly root: Readonly<Record<string, Field>>;
  private doc!: Document.Parsed;

  constructor(
    private readonly text: string,
    private readonly file: string,
    private readonly checkFiles: boolean,
    private readonly desired: boolean,
  ) {
    this.dir = file ? path.dirname(path.resolve(file)) : process.cwd();
    this.root = desired ? DESIRED_SCHEMA : SCHEMA;
  }

  run(): ParseResult {
    this.doc = parseDocument(this.text, { lineCounter: this.lc, keepSourceTokens: true, prettyErrors: false, uniqueKeys: true });
    for (const e of [...this.doc.errors]) {
      const pos = this.lc.linePos(e.pos[0]);
      // yaml's messages end with " at line L, column C" even without prettyErrors
      this.problems.push({ file: this.file, line: pos.line, column: pos.col, path: '(yaml)', message: firstLine(e.message) });
    }
    if (this.problems.length) return { config: null, problems: this.problems };
    const root = this.doc.contents as Node | null;
    let raw: Raw = {};
    if (root !== null && !(isScalar(root) && root.value === null)) {
      const v = this.value({ kind: { t: 'map', fields: this.root }, doc: 'root' }, root, '');
      raw = (v as Raw | undefined) ?? {};
    } else {
      raw = this.defaultsOf(this.root);
    }
    if (this.problems.length) return { config: null, problems: this.sorted() };
    const config = this.build(raw);
    this.semantic(config);
    if (this.problems.length) return { config: null, problems: this.sorted() };
    return { config, problems: [] };
  }

  private engineLimits(c: Config): void {
    for (const p of engineLimitsOf(c)) this.reportAt(p.path, p.message);
  }

  private sorted(): Problem[] {
    return this.problems.sort((a, b) => a.line - b.line || a.column - b.column);
  }

  private report(node: Node | null | undefined, keyPath: string, message: string): void {
    const offset = node?.range?.[0] ?? 0;
    const pos = this.lc.linePos(offset);
    this.problems.push({ file: this.file, line: pos.line, column: pos.col, path: keyPath, message });
  }

  private reportAt(keyPath: string, message: string): void {
    this.report(this.nodes.get(keyPath), keyPath, message);
  }

  private defaultsOf(fields: Readonly<Record<string, Field>>): Raw {
    const out: Raw = {};
    for (const [k, f] of Object.entries(fields)) {
      if (f.kind.t === 'map') out[k] = this.defaultsOf(f.kind.fields);
      else out[k] = this.defaultValue(f);
    }
    return out;
  }

  /** A key's default, converted like a value the user wrote (addresses parsed). */
  private defaultValue(f: Field): unknown {
    const d = f.default ?? null;
    if (d === null) return null;
    if (f.kind.t === 'endpoint') return parseEndpoint(d as string, 'default');
    if (f.kind.t === 'path') return path.resolve(this.dir, d as string);
    return structuredClone(d);
  }

  /** Validate `node` against `field`; returns the plain value or undefined after reporting. */
  private value(field: Field, node0: Node, keyPath: string): unknown {
    const node = isAlias(node0) ? (node0.resolve(this.doc) as Node | undefined) ?? node0 : node0;
    this.nodes.set(keyPath, node);
    const kind = field.kind;
    if (isScalar(node) && node.value === null) {
      if (field.nullable) return null;
      if (kind.t === 'map') return this.defaultsOf(kind.fields);
      if (kind.t === 'list' && !field.required && !(kind.minItems && kind.minItems > 0)) return [];
      this.report(node, keyPath, `expected ${describe(kind)}, got null`);
      return undefined;
    }
    return this.kind(kind, node, keyPath);
  }

  private kind(kind: FieldKind, node: Node, keyPath: string): unknown {
    switch (kind.t) {
      case 'map': {
        if (!isMap(node)) {
          this.report(node, keyPath, `expected a map of ${Object.keys(kind.fields).join(', ')}, got ${typeName(node)}`);
          return undefined;
        }
        const out: Raw = {};
        const seen = new Set<string>();
        for (const pair of node.items) {
          const keyNode = pair.key as Node;
          const key = isScalar(keyNode) ? String(keyNode.value) : '';
          const sub = keyPath ? `${keyPath}.${key}` : key;
          const f = kind.fields[key];
          if (!f) {
            const hint = didYouMean(key, Object.keys(kind.fields));
            const accepted = `accepted keys: ${Object.keys(kind.fields).join(', ')}`;
            this.report(keyNode, sub, `unknown key "${key}"${hint ? `, did you mean "${hint}"?` : ''} (${accepted})`);
            continue;
          }
          seen.add(key);
          this.nodes.set(sub, pair.value as Node);
          if (pair.value === null || pair.value === undefined) {
            // "key:" with no value
            out[key] = this.value(f, nullScalarAt(keyNode), sub);
          } else {
            out[key] = this.value(f, pair.value as Node, sub);
          }
        }
        for (const [key, f] of Object.entries(kind.fields)) {
          if (seen.has(key)) continue;
          const sub = keyPath ? `${keyPath}.${key}` : key;
          if (f.required) this.report(node, sub, `missing required key "${key}": ${f.doc}`);
          else if (f.kind.t === 'map') out[key] = this.defaultsOf(f.kind.fields);
          else out[key] = this.defaultValue(f);
        }
        return out;
      }
      case 'list': {
        if (!isSeq(node)) {
          if (kind.scalarOk && isScalar(node)) return [this.value({ kind: kind.of, doc: '' }, node, `${keyPath}[0]`)];
          this.report(node, keyPath, `expected a list of ${describe(kind.of)}, got ${typeName(node)}`);
          return undefined;
        }
        if (kind.minItems && node.items.length < kind.minItems) {
          this.report(node, keyPath, `must list at least ${kind.minItems} item(s), each ${describe(kind.of)}`);
          return undefined;
        }
        if (kind.maxItems !== undefined && node.items.length > kind.maxItems) {
          this.report(node, keyPath, `lists ${node.items.length} items, at most ${kind.maxItems} are accepted (the engine's limit)`);
          return undefined;
        }
        return node.items.map((item, i) =>
          this.value({ kind: kind.of, doc: '' }, item as Node, `${keyPath}[${i}]`),
        );
      }
      default:
        break;
    }
    if (!isScalar(node)) {
      const hint = kind.t === 'endpoint' || kind.t === 'prefix' ? ' (quote IPv6 addresses: "[2001:db8::1]:5000")' : '';
      this.report(node, keyPath, `expected ${describe(kind)}, got ${typeName(node)}${hint}`);
      return undefined;
    }
    const v = node.value;
    switch (kind.t) {
      case 'string':
        if (typeof v !== 'string') return this.wrong(node, keyPath, kind, v);
        if (kind.nonEmpty && v.trim() === '') return this.fail(node, keyPath, 'must not be empty');
        return v;
      case 'name': {
        const p = nameProblem(kind.of, v);
        return p === null ? v : this.fail(node, keyPath, p);
      }
      case 'bool':
        if (typeof v !== 'boolean') return this.wrong(node, keyPath, kind, v);
        return v;
      case 'int':
        if (typeof v !== 'number' || !Number.isInteger(v)) return this.wrong(node, keyPath, kind, v);
        if (v < kind.min || v > kind.max) return this.fail(node, keyPath, `${v} is outside ${kind.min}..${kind.max}`);
        if (kind.pow2 && (v & (v - 1)) !== 0) return this.fail(node, keyPath, `${v} is not a power of two`);
        return v;
      case 'enum':
        if (typeof v !== 'string' || !kind.values.includes(v)) {
          const hint = typeof v === 'string' ? didYouMean(v, kind.values) : undefined;
          return this.fail(node, keyPath, `${JSON.stringify(v)} is not one of ${kind.values.join(' | ')}${hint ? `, did you mean "${hint}"?` : ''}`);
        }
        return v;
      case 'path':
        if (typeof v !== 'string' || v === '') return this.wrong(node, keyPath, kind, v);
        return path.resolve(this.dir, v);
      case 'endpoint':
        if (typeof v !== 'string') return this.wrong(node, keyPath, kind, v);
        try {
          if (kind.allowPortZero && /:0$/.test(v)) {
            const e = parseEndpoint(v.slice(0, -2) + ':1', keyPath);
            return { ...e, port: 0 };
          }
          return parseEndpoint(v, keyPath);
        } catch (err) {
          return this.fail(node, keyPath, stripWhat((err as Error).message, keyPath));
        }
      case 'prefix':
        if (typeof v !== 'string') return this.wrong(node, keyPath, kind, v);
        try {
          return parsePrefix(v, keyPath);
        } catch (err) {
          return this.fail(node, keyPath, stripWhat((err as Error).message, keyPath));
        }
    }
  }

  private wrong(node: Node, keyPath: string, kind: FieldKind, v: unknown): undefined {
    return this.fail(node, keyPath, `expected ${describe(kind)}, got ${typeof v} ${JSON.stringify(v)}`);
  }

  private fail(node: Node, keyPath: string, message: string): undefined {
    this.report(node, keyPath, message);
    return undefined;
  }

  /** snake_case YAML -> typed Config (only called when the walk found no problem). */
  private build(raw: Raw): Config {
    const e = raw.engine as Raw;
    const r = e.region as Raw;
    const m = raw.metrics as Raw;
    const c = raw.control as Raw;
    const l = raw.log as Raw;
    return {
      file: this.file ? path.resolve(this.file) : '',
      mediaRoot: (raw.media_root as string | null) ?? this.dir,
      engine: {
        interface: e.interface as string,
        netns: e.netns as string | null,
        backend: e.backend as 'afpacket' | 'afxdp' | 'null',
        workers: e.workers as number,
        latenessLimitMs: e.lateness_limit_ms as number,
        drainMs: e.drain_ms as number,
        cpuTx: e.cpu_tx as number,
        cpuRx: e.cpu_rx as number,
        txPriority: e.tx_priority as number,
        txWindowUs: e.tx_window_us as number,
        relayTier: e.relay_tier as 'kernel' | 'user',
        kernelOrphanS: e.kernel_orphan_s as number,
        region: {
          slotsPerLane: r.slots_per_lane as number,
          slotSize: r.slot_size as number,
          submitEntries: r.submit_entries as number,
          destsPerLane: r.dests_per_lane as number,
          policyEntries: r.policy_entries as number,
          eventEntries: r.event_entries as number,
          maxStreams: r.max_streams as number,
          maxOutputs: r.max_outputs as number,
        },
      },
      metrics: { listen: (m.listen as Endpoint | null) ?? null },
      control: {
        socket: c.socket as string | null,
        tcp: c.tcp as Endpoint | null,
        token: c.token as string | null,
        // checked by semantic(): a bad mode is reported there, under its key
        socketMode: /^0?[0-7]{3}$/.test(c.socket_mode as string) ? parseInt(c.socket_mode as string, 8) : NaN,
        socketGroup: c.socket_group as string | null,
        tls: { cert: (c.tls as Raw).cert as string | null, key: (c.tls as Raw).key as string | null, clientCa: (c.tls as Raw).client_ca as string | null },
        maxMessageBytes: c.max_message_bytes as number,
        maxConnections: c.max_connections as number,
        maxStreams: c.max_streams as number,
        idleTimeoutMs: c.idle_timeout_ms as number,
        requestTimeoutMs: c.request_timeout_ms as number,
      },
      log: { level: l.level as Config['log']['level'] },
      cluster: buildCluster(raw.cluster as Raw),
      relays: (raw.relays as Raw[]).map((x) => ({
        name: x.name as string,
        listen: x.listen as Endpoint,
        sources: x.sources as Config['relays'][0]['sources'],
        subscribers: (x.subscribers as Endpoint[] | null) ?? [],
        allowAnySource: x.allow_any_source as boolean,
        maxPps: x.max_pps as number,
        maxBps: x.max_bps as number,
        ...(typeof x.ssm === 'boolean' ? { ssm: x.ssm } : {}),
        ...(typeof x.multicast_ttl === 'number' && x.multicast_ttl !== DEFAULT_MULTICAST_TTL ? { multicastTtl: x.multicast_ttl } : {}),
        ...(x.node ? { node: x.node as string[] } : {}),
      })),
      sessions: (raw.sessions as Raw[]).map((x) => ({
        name: x.name as string,
        file: x.file as string,
        to: x.to as Endpoint,
        format: x.format as Config['sessions'][0]['format'],
        loop: x.loop as boolean,
        ...(x.node ? { node: x.node as string[] } : {}),
      })),
    };
  }

  /** Rules across keys: uniqueness, loops, files, token, the engine's limits. */
  private semantic(c: Config): void {
    this.engineLimits(c);
    const relayNames = new Map<string, number>();
    const listens = new Map<string, number>();
    c.relays.forEach((r, i) => {
      const prev = relayNames.get(r.name);
      if (prev !== undefined) this.reportAt(`relays[${i}].name`, `duplicate relay name "${r.name}" (first used by relays[${prev}])`);
      else relayNames.set(r.name, i);
      const l = formatEndpoint(r.listen);
      const prevL = listens.get(l);
      if (prevL !== undefined) this.reportAt(`relays[${i}].listen`, `${l} is already the listen address of relays[${prevL}] ("${c.relays[prevL].name}")`);
      else listens.set(l, i);
      const subs = new Map<string, number>();
      r.subscribers.forEach((s, j) => {
        const t = formatEndpoint(s);
        if (t === l) this.reportAt(`relays[${i}].subscribers[${j}]`, `${t} is the relay's own listen address (a loop)`);
        const p = subs.get(t);
        if (p !== undefined) this.reportAt(`relays[${i}].subscribers[${j}]`, `duplicate subscriber ${t} (also subscribers[${p}])`);
        else subs.set(t, j);
      });
      r.sources.forEach((s, j) => {
        if (s.family !== r.listen.family) {
          this.reportAt(`relays[${i}].sources[${j}]`, `IPv${s.family} prefix on an IPv${r.listen.family} relay: it can never match`);
        }
        const g = sourceGroupProblem(s);
        if (g) this.reportAt(`relays[${i}].sources[${j}]`, g);
        const any = anySourceProblem(s, r.allowAnySource === true);
        if (any) this.reportAt(`relays[${i}].sources[${j}]`, any);
      });
      if (isMulticast(r.listen.address, r.listen.family)) {
        const gp = groupProblem(r.listen);
        if (gp) this.reportAt(`relays[${i}].listen`, gp);
      }
      const ssm = ssmOf(r.listen, r.sources, r.ssm, `relays[${i}]`);
      if ('problem' in ssm) this.reportAt(`relays[${i}].ssm`, ssm.problem.replace(`relays[${i}].ssm: `, ''));
      r.subscribers.forEach((s, j) => {
        if (isMulticast(s.address, s.family)) {
          const gp = groupProblem(s);
          if (gp) this.reportAt(`relays[${i}].subscribers[${j}]`, gp);
        }
      });
    });
    // a cluster's relays may feed other nodes' relays (src/cluster/desired.ts checks the nodes)
    if (!this.desired) c.relays.forEach((r, i) =>
      r.subscribers.forEach((s, j) => {
        const t = formatEndpoint(s);
        const other = listens.get(t);
        if (other !== undefined && other !== i) {
          this.reportAt(`relays[${i}].subscribers[${j}]`, `${t} is the listen address of relays[${other}] ("${c.relays[other].name}"): relays must not feed relays`);
        }
      }),
    );
    const sessionNames = new Map<string, number>();
    c.sessions.forEach((s, i) => {
      const prev = sessionNames.get(s.name);
      if (prev !== undefined) this.reportAt(`sessions[${i}].name`, `duplicate session name "${s.name}" (first used by sessions[${prev}])`);
      else sessionNames.set(s.name, i);
      // the same check the control API and the session workers make; a
      // cluster's desired state is checked by the node that plays it, against
      // its own media_root (the writer's is not the node's)
      const p = this.desired ? null : mediaPathProblem(c.mediaRoot, s.file, this.checkFiles);
      if (p) this.reportAt(`sessions[${i}].file`, p);
    });
    if (c.control.tcp && !c.control.token) {
      this.reportAt('control.tcp', 'a TCP control listener needs control.token (the bearer token every call carries)');
    }
    this.controlRules(c);
    this.clusterRules(c);
  }

  /** control: socket mode, TLS pairs and files, no token in clear over a network. */
  private controlRules(c: Config): void {
    const k = c.control;
    if (Number.isNaN(k.socketMode)) {
      const raw = (this.nodes.get('control.socket_mode') as { value?: unknown } | undefined)?.value;
      this.reportAt('control.socket_mode', `"${String(raw)}" is not an octal mode such as "0660" or "0600"`);
    }
    if (!!k.tls.cert !== !!k.tls.key) this.reportAt(k.tls.cert ? 'control.tls.cert' : 'control.tls.key', 'control.tls.cert and control.tls.key go together');
    if (k.tls.clientCa && !k.tls.cert) this.reportAt('control.tls.client_ca', 'needs control.tls.cert and control.tls.key (client certificates are checked over TLS)');
    if (k.tcp && !k.tls.cert && !isLoopback(k.tcp.address)) {
      this.reportAt('control.tcp', `${k.tcp.address} is not a loopback address: set control.tls.cert and control.tls.key (the token must not cross a network in clear)`);
    }
    if (this.checkFiles) {
      for (const [key, f] of [['control.tls.cert', k.tls.cert], ['control.tls.key', k.tls.key], ['control.tls.client_ca', k.tls.clientCa]] as const) {
        if (f && !fs.existsSync(f)) this.reportAt(key, `${f} does not exist`);
      }
    }
  }

  /** cluster: URLs, names, files; in cluster mode relays and sessions live in etcd, not in the file. */
  private clusterRules(c: Config): void {
    const k = c.cluster;
    k.etcd.forEach((u, i) => {
      const why = etcdUrlProblem(u);
      if (why) this.reportAt(`cluster.etcd[${i}]`, why);
    });
    const nameWhy = nodeNameProblem(k.node);
    if (nameWhy) this.reportAt('cluster.node', this.nodes.has('cluster.node') ? nameWhy : `the host name ${nameWhy}; set cluster.node`);
    if (!k.prefix.endsWith('/')) this.reportAt('cluster.prefix', `"${k.prefix}" must end with "/" (keys are PREFIX/relays/NAME, ...)`);
    if (!!k.tls.cert !== !!k.tls.key) this.reportAt(k.tls.cert ? 'cluster.tls.cert' : 'cluster.tls.key', 'cluster.tls.cert and cluster.tls.key go together');
    if (!!k.auth.username !== !!k.auth.passwordFile) this.reportAt(k.auth.username ? 'cluster.auth.username' : 'cluster.auth.password_file', 'cluster.auth.username and cluster.auth.password_file go together');
    if (this.checkFiles) {
      for (const [key, f] of [['cluster.tls.ca', k.tls.ca], ['cluster.tls.cert', k.tls.cert], ['cluster.tls.key', k.tls.key], ['cluster.auth.password_file', k.auth.passwordFile]] as const) {
        if (f && !fs.existsSync(f)) this.reportAt(key, `${f} does not exist`);
      }
    }
    if (this.desired) {
      c.relays.forEach((r, i) => r.node?.forEach((n, j) => {
        const why = nodeNameProblem(n);
        if (why) this.reportAt(`relays[${i}].node[${j}]`, why);
      }));
      c.sessions.forEach((s, i) => s.node?.forEach((n, j) => {
        const why = nodeNameProblem(n);
        if (why) this.reportAt(`sessions[${i}].node[${j}]`, why);
      }));
    } else if (k.etcd.length > 0) {
      const hint = 'in cluster mode (cluster.etcd set) relays and sessions live in etcd: write them with `reflector ctl --etcd URL apply FILE`';
      if (c.relays.length) this.reportAt('relays', hint);
      if (c.sessions.length) this.reportAt('sessions', hint);
    }
  }
}

function buildCluster(k: Raw): Config['cluster'] {
  const tls = k.tls as Raw;
  const auth = k.auth as Raw;
  return {
    etcd: k.etcd as string[],
    node: (k.node as string | null) ?? os.hostname(),
    prefix: k.prefix as string,
    leaseS: k.lease_s as number,
    checkpointMs: k.checkpoint_ms as number,
    tls: { ca: tls.ca as string | null, cert: tls.cert as string | null, key: tls.key as string | null },
    auth: { username: auth.username as string | null, passwordFile: auth.password_file as string | null },
  };
}

const NODE_NAME_RE = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;

/** Why `name` cannot be a cluster node's name (it is a key segment in etcd), or null. */
export function nodeNameProblem(name: string): string | null {
  return NODE_NAME_RE.test(name) ? null : `"${name}" is not a node name (1..253 letters, digits, ".", "_", "-"; starting and ending with a letter or digit)`;
}

/** Why `u` is not an etcd client URL we can dial, or null. */
export function etcdUrlProblem(u: string): string | null {
  const accepted = '(accepted: http://HOST:PORT, https://HOST:PORT, unix://PATH)';
  if (u.startsWith('unix://')) return u.length > 'unix://'.length ? null : `"${u}" names no socket path ${accepted}`;
  if (!u.includes('://')) return `"${u}" is not a URL: did you mean "http://${u}"? ${accepted}`;
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    return `"${u}" is not a URL ${accepted}`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `"${u}": scheme ${url.protocol} is not supported ${accepted}`;
  if (!url.port) return `"${u}" names no port ${accepted}`;
  if (url.pathname !== '/' || url.search || url.hash) return `"${u}": a client URL has no path ${accepted}`;
  return null;
}

/** The engine's table and region limits that `serve` would otherwise refuse at start. */
function engineLimitsOf(c: Config): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  const subs = c.relays.reduce((a, r) => a + r.subscribers.length, 0);
  if (subs > MAX_OUTPUTS) out.push({ path: 'relays', message: `${subs} subscribers in all, the engine holds at most ${MAX_OUTPUTS} outputs` });
  // every relay and every output owns one output counter of the region
  const slots = c.relays.length + subs;
  const maxOutputs = c.engine.region.maxOutputs;
  if (slots > maxOutputs) {
    out.push({ path: 'engine.region.max_outputs', message: `${c.relays.length} relays and ${subs} subscribers need ${slots} output counters, max_outputs is ${maxOutputs}` });
  }
  const r = c.engine.region;
  const size = computeLayout({ lanes: c.engine.workers + 1, ...r }).size;
  if (size > MAX_REGION) {
    out.push({
      path: 'engine.region',
      message: `the region needs ${size} bytes, more than the ${MAX_REGION}-byte limit (lower engine.workers, slots_per_lane, slot_size, max_streams or max_outputs)`,
    });
  }
  return out;
}

function nullScalarAt(keyNode: Node): Node {
  // a stand-in node positioned at the key, for "key:" with nothing after it
  const n = parseDocument('null').contents as Node;
  if (keyNode.range) n.range = [keyNode.range[0], keyNode.range[1], keyNode.range[2]];
  return n;
}

function describe(kind: FieldKind): string {
  switch (kind.t) {
    case 'string':
      return 'a string';
    case 'name':
      return `a ${kind.of} name`;
    case 'int':
      return kind.pow2 ? `a power of two in ${kind.min}..${kind.max}` : `an integer in ${kind.min}..${kind.max}`;
    case 'bool':
      return 'true or false';
    case 'enum':
      return kind.values.join(' | ');
    case 'endpoint':
      return 'an "ADDR:PORT" string';
    case 'prefix':
      return 'an "ADDR/LEN" prefix';
    case 'path':
      return 'a file path';
    case 'map':
      return 'a map';
    case 'list':
      return `a list of ${describe(kind.of)}`;
  }
}

function typeName(node: Node): string {
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) return `${typeof node.value} ${JSON.stringify(node.value)}`;
  return 'something else';
}

function stripWhat(message: string, what: string): string {
  return message.startsWith(`${what}: `) ? message.slice(what.length + 2) : message;
}

function firstLine(s: string): string {
  return s.split('\n')[0];
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.');
}
