// SPDX-License-Identifier: MIT
// ServerEvents: every subscriber gets every later event, stamped; one that
// throws is reported and does not stop the others or the emitter.
import t from 'tap';
import { ServerEvents, type StampedEvent } from '../../src/server/events';

t.test('events reach every subscriber, stamped, until it unsubscribes', async (t) => {
  const ev = new ServerEvents();
  const a: StampedEvent[] = [];
  const b: StampedEvent[] = [];
  const stopA = ev.subscribe((e) => a.push(e));
  ev.subscribe((e) => b.push(e));
  t.equal(ev.listenerCount, 2);
  const before = Date.now();
  ev.emit({ type: 'session_ended', session: 's1' });
  stopA();
  ev.emit({ type: 'engine_stopped', reason: 'server stop' });
  t.same(a.map((e) => e.type), ['session_ended']);
  t.same(b.map((e) => e.type), ['session_ended', 'engine_stopped']);
  t.ok(a[0].at >= before && a[0].at <= Date.now(), 'stamped with the emit time');
  t.equal(ev.listenerCount, 1);
});

t.test('a listener that throws is reported; the others still run', async (t) => {
  const errors: Array<{ err: unknown; type: string }> = [];
  const ev = new ServerEvents((err, e) => errors.push({ err, type: e.type }));
  const got: string[] = [];
  ev.subscribe(() => {
    throw new Error('listener bug');
  });
  ev.subscribe((e) => got.push(e.type));
  t.doesNotThrow(() => ev.emit({ type: 'reload_refused', reason: 'SIGHUP', problems: ['x'] }));
  t.same(got, ['reload_refused']);
  t.equal(errors.length, 1);
  t.equal((errors[0].err as Error).message, 'listener bug');
});
