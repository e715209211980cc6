// SPDX-License-Identifier: MIT
// Placement as every node computes it (src/cluster/placement.ts,
// rendezvous.ts): relays on the first live node of their list, sessions by
// rendezvous hashing (balanced; a dead node's sessions spread over the
// others and nothing else moves), sticky placements (no fail-back), what a
// node claims, keeps and releases, and what status reports.
import t from 'tap';
import { parseEndpoint, parsePrefix } from '../../src/net/address';
import type { RelayConfig, SessionConfig } from '../../src/config/schema';
import { candidates, plan, refKey, where, type Placed, type PlacementView } from '../../src/cluster/placement';
import { rendezvousOrder, weight } from '../../src/cluster/rendezvous';
import { ClusterKeys } from '../../src/cluster/keys';

const relay = (name: string, node: string[]): RelayConfig => ({ name, node, listen: parseEndpoint('198.18.0.10:5000'), sources: [parsePrefix('198.18.0.0/24')], subscribers: [] });
const session = (name: string, node?: string[]): SessionConfig => ({ name, file: '/m.ts', to: parseEndpoint('198.18.0.20:7000'), format: 'mpegts', loop: false, ...(node ? { node } : {}) });

function view(live: string[], relays: RelayConfig[], sessions: SessionConfig[], placed: Array<[string, string]> = []): PlacementView {
  return {
    live: new Set(live),
    relays: new Map(relays.map((r) => [r.name, r])),
    sessions: new Map(sessions.map((s) => [s.name, s])),
    placements: new Map(placed.map(([k, node]): [string, Placed] => [k, { node, lease: '1' }])),
  };
}

t.test('rendezvous order: stable, the same everywhere, balanced', async (t) => {
  t.equal(weight('s1', 'a'), weight('s1', 'a'), 'a weight is a pure function');
  t.same(rendezvousOrder('s1', ['a', 'b', 'c']), rendezvousOrder('s1', ['c', 'a', 'b']), 'the order of the input does not matter');
  const nodes = Array.from({ length: 10 }, (_, i) => `n${i}`);
  const count = new Map(nodes.map((n) => [n, 0]));
  const names = Array.from({ length: 2000 }, (_, i) => `session-${i}`);
  for (const s of names) count.set(rendezvousOrder(s, nodes)[0], count.get(rendezvousOrder(s, nodes)[0])! + 1);
  const [min, max] = [Math.min(...count.values()), Math.max(...count.values())];
  t.ok(min >= 140 && max <= 260, `2000 sessions over 10 nodes: ${min}..${max} each (200 +- 30%)`);
  // a node leaves: only its sessions move, each to its own next node
  const without = nodes.filter((n) => n !== 'n3');
  let moved = 0;
  const wrong: string[] = [];
  for (const s of names) {
    const before = rendezvousOrder(s, nodes);
    const after = rendezvousOrder(s, without)[0];
    if (before[0] === 'n3') {
      moved++;
      if (after !== before[1]) wrong.push(`${s}: to ${after}, not its next node ${before[1]}`);
    } else if (after !== before[0]) wrong.push(`${s} moved from ${before[0]} though n3 left`);
  }
  t.same(wrong, [], 'n3\'s sessions go to their own next node; no other session moves');
  t.equal(moved, count.get('n3'), `exactly n3's ${moved} sessions moved`);
});

t.test('candidates: a relay\'s or pinned session\'s live nodes in order; otherwise rendezvous', async (t) => {
  const live = new Set(['a', 'c']);
  t.same(candidates('relay', 'r', relay('r', ['b', 'c', 'a']), live), ['c', 'a'], 'listed order, live only');
  t.same(candidates('relay', 'r', relay('r', ['x']), live), [], 'none live');
  t.same(candidates('session', 's', session('s', ['c']), live), ['c'], 'a pinned session');
  t.same(candidates('session', 's', session('s'), live), rendezvousOrder('s', live), 'rendezvous');
});

t.test('plan: claim what is vacant and first in line, keep what is held, release what left', async (t) => {
  const rs = [relay('r1', ['a', 'b']), relay('r2', ['b', 'a']), relay('gone', ['z'])];
  const ss = ['s1', 's2', 's3', 's4'].map((n) => session(n));
  const v = view(['a', 'b'], rs, ss);
  const pa = plan(v, 'a');
  const pb = plan(v, 'b');
  t.same(pa.claim.filter((r) => r.kind === 'relay').map((r) => r.name), ['r1'], 'a claims r1');
  t.same(pb.claim.filter((r) => r.kind === 'relay').map((r) => r.name), ['r2'], 'b claims r2');
  const sa = pa.claim.filter((r) => r.kind === 'session').map((r) => r.name);
  const sb = pb.claim.filter((r) => r.kind === 'session').map((r) => r.name);
  t.same([...sa, ...sb].sort(), ['s1', 's2', 's3', 's4'], 'every session claimed by exactly one node');
  t.same(sa.filter((x) => sb.includes(x)), [], 'by one only');

  // placed on a; b first in r1's list now: no fail-back, a keeps it
  const sticky = view(['a', 'b'], [relay('r1', ['b', 'a'])], [], [[refKey('relay', 'r1'), 'a']]);
  t.same(plan(sticky, 'a').keep, [{ kind: 'relay', name: 'r1' }], 'a keeps r1 though b is first again');
  t.same(plan(sticky, 'b').claim, [], 'and b does not claim it');
  // a is no longer listed: release
  const unlisted = view(['a', 'b'], [relay('r1', ['b'])], [], [[refKey('relay', 'r1'), 'a']]);
  t.same(plan(unlisted, 'a').release, [{ kind: 'relay', name: 'r1' }], 'a releases r1 when the list drops it');
  // the entry was deleted
  const deleted = view(['a'], [], [], [[refKey('session', 'old'), 'a']]);
  t.same(plan(deleted, 'a').release, [{ kind: 'session', name: 'old' }], 'a releases a session that is no longer desired');
  t.same(plan(deleted, 'b'), { claim: [], release: [], keep: [] }, 'another node\'s placement is not b\'s business');
});

t.test('where: status lines, nodes that do not exist, nowhere to run', async (t) => {
  const v = view(['a'], [relay('r1', ['a', 'ghost']), relay('r2', ['ghost'])], [session('s1')], [[refKey('relay', 'r1'), 'a']]);
  const w = where(v);
  const r1 = w.find((x) => x.name === 'r1')!;
  t.equal(r1.placedOn, 'a');
  t.same(r1.problems, ['node "ghost" does not exist (no live node has that name)']);
  const r2 = w.find((x) => x.name === 'r2')!;
  t.equal(r2.placedOn, null);
  t.same(r2.problems, ['node "ghost" does not exist (no live node has that name)', 'not running: none of its nodes (ghost) is live']);
  const s1 = w.find((x) => x.name === 's1')!;
  t.same(s1.order, ['a']);
  t.same(s1.problems, [], 'a vacant session with a live node: not a problem (it is about to be claimed)');
  t.same(where(view([], [], [session('s')]))[0].problems, ['not running: no live node']);
});

t.test('the key layout', async (t) => {
  const k = new ClusterKeys('/p/');
  t.same(k.parse(k.entry('relay', 'cam/1')), { t: 'relay', name: 'cam/1' }, 'a name may hold /');
  t.same(k.parse(k.placement('session', 's')), { t: 'placement', kind: 'session', name: 's' });
  t.same(k.parse(k.checkpoint('s')), { t: 'checkpoint', name: 's' });
  t.same(k.parse(k.node('n')), { t: 'node', name: 'n' });
  t.equal(k.parse('/p/other/x'), null);
  t.equal(k.parse('/q/relays/x'), null);
  t.equal(k.parse('/p/placement/bogus/x'), null);
  t.equal(k.parse('/p/relays/'), null);
  const w = k.watched();
  for (const key of [k.node('n'), k.placement('relay', 'r'), k.entry('relay', 'r'), k.entry('session', 'zzz')]) t.ok(key >= w.start && key < w.end, `${key} is watched`);
  t.ok(k.checkpoint('s') < w.start, 'checkpoints are not watched');
});
