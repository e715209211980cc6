// SPDX-License-Identifier: MIT
// Multicast bad input (issue #14): a group as a source prefix, ssm on a
// unicast listen address or with a wide prefix, a link-local control group,
// a join the kernel refuses, a session sent to a control group: each a clear
// error naming the key and the value, nothing else disturbed (a relay that
// was running keeps relaying, the refused relay leaves no rule and no group).
import t from 'tap';
import { parseConfig, formatProblem } from '../../src/config/validate';
import { makeDestination } from '../../src/net/destination';
import { parseEndpoint } from '../../src/net/address';
import { cannotRun, endpoint, makeBed, send, startPorts } from './bed';
import { groupRoute, maddr } from './mcast';

t.test('config: each multicast mistake is one problem naming its key', async (t) => {
  const base = (extra: string, listen = '239.1.1.1:5000', sources = '[198.18.0.0/15]'): string =>
    `relays:\n  - name: tv\n    listen: ${listen}\n    sources: ${sources}\n${extra}`;
  const cases: Array<{ yaml: string; path: string; message: RegExp }> = [
    { yaml: base('', '239.1.1.1:5000', '[239.1.1.0/24]'), path: 'relays[0].sources[0]', message: /239\.1\.1\.0\/24 is a multicast group/ },
    { yaml: base('    ssm: true\n', '198.18.0.2:5000'), path: 'relays[0].ssm', message: /198\.18\.0\.2 is not a multicast group/ },
    { yaml: base('    ssm: true\n'), path: 'relays[0].ssm', message: /source 198\.18\.0\.0\/15 is not a single host/ },
    { yaml: base('', '224.0.0.5:5000'), path: 'relays[0].listen', message: /224\.0\.0\.5 is a link-local control group/ },
    { yaml: base('    subscribers: [224.0.0.9:6000]\n', '198.18.0.2:5000'), path: 'relays[0].subscribers[0]', message: /224\.0\.0\.9 is a link-local control group/ },
    { yaml: base('    multicast_ttl: 0\n'), path: 'relays[0].multicast_ttl', message: /1\.\.255|at least 1|0/ },
  ];
  for (const c of cases) {
    const r = parseConfig(c.yaml, '/tmp/reflector.yaml');
    t.equal(r.config, null, `refused: ${c.path}`);
    t.equal(r.problems.length, 1, `one problem: ${r.problems.map(formatProblem).join(' | ')}`);
    t.equal(r.problems[0]?.path, c.path, `names ${c.path}`);
    t.match(r.problems[0]?.message, c.message, r.problems[0]?.message);
  }
  const ok = parseConfig(base('    ssm: false\n    multicast_ttl: 4\n'), '/tmp/reflector.yaml');
  t.same(ok.problems, [], 'a group with ssm: false and a TTL is valid');
  t.equal(ok.config?.relays[0].ssm, false);
  t.equal(ok.config?.relays[0].multicastTtl, 4);
});

t.test('a session sent to a control group is refused before any I/O', async (t) => {
  await t.rejects(makeDestination(parseEndpoint('224.0.0.1:7000'), { dev: 'lo' }), { code: 'ERR_INVALID_ARG', message: /to: 224\.0\.0\.1 is a link-local control group/ });
  await t.rejects(makeDestination(parseEndpoint('239.0.0.1:7000'), {}), { code: 'ERR_INVALID_ARG', message: /239\.0\.0\.1 is a multicast group: name the interface/ });
});

if (!cannotRun(t)) {
  t.test('the relays manager refuses each with the key and value; a refused join disturbs nothing', async (t) => {
    const bed = await makeBed(t, {}, 1);
    const { tb, relays } = bed;
    const listen = endpoint(tb.addr('relay'), 5000);
    await relays.addRelay({ name: 'live', listen, sources: ['198.18.0.0/15'], subscribers: [endpoint(tb.addr('s1'), 7300)] });
    await t.rejects(relays.addRelay({ name: 'a', listen: '239.1.1.1:5000', sources: ['239.1.1.0/24'] }),
      { code: 'ERR_INVALID_ARG', message: /relay "a"\.sources\[0\]: 239\.1\.1\.0\/24 is a multicast group/ });
    await t.rejects(relays.addRelay({ name: 'b', listen: endpoint(tb.addr('relay'), 5001), sources: [`${tb.addr('origin')}/32`], ssm: true }),
      { code: 'ERR_INVALID_ARG', message: new RegExp(`relay "b"\\.ssm: true, but the listen address ${tb.addr('relay').replace(/\./g, '\\.')} is not a multicast group`) });
    await t.rejects(relays.addRelay({ name: 'c', listen: '239.1.1.1:5000', sources: ['198.18.0.0/15'], ssm: true }),
      { code: 'ERR_INVALID_ARG', message: /relay "c"\.ssm: true, but source 198\.18\.0\.0\/15 is not a single host/ });
    await t.rejects(relays.addRelay({ name: 'd', listen: '224.0.0.5:5000', sources: ['198.18.0.0/15'] }),
      { code: 'ERR_INVALID_ARG', message: /relay "d"\.listen: 224\.0\.0\.5 is a link-local control group/ });
    await t.rejects(relays.addOutput('live', '224.0.0.9:6000'), { code: 'ERR_INVALID_ARG', message: /relay "live" subscriber 224\.0\.0\.9:6000: 224\.0\.0\.9 is a link-local control group/ });
    t.same(relays.list()[0].subscribers, [endpoint(tb.addr('s1'), 7300)], 'the running relay keeps its one subscriber');
    // the kernel refuses a join when the namespace allows no more memberships
    await tb.exec('relay', ['sysctl', '-q', '-w', 'net.ipv4.igmp_max_memberships=0']);
    await t.rejects(relays.addRelay({ name: 'j', listen: '239.9.9.9:5000', sources: ['198.18.0.0/15'], subscribers: [endpoint(tb.addr('s1'), 7301)] }),
      { code: 'ERR_MULTICAST_JOIN', message: /relay "j"\.listen: 239\.9\.9\.9:5000: an any-source join of 239\.9\.9\.9 failed: .*the kernel refused MCAST_JOIN_GROUP/ });
    await tb.exec('relay', ['sysctl', '-q', '-w', 'net.ipv4.igmp_max_memberships=20']);
    t.same(relays.list().map((r) => r.name), ['live'], 'only the running relay exists');
    t.notMatch(await maddr(tb, 'relay'), /239\.9\.9\.9/, 'no membership left behind');
    // the same name and group work once the kernel allows it: nothing of "j" stayed
    await relays.addRelay({ name: 'j', listen: '239.9.9.9:5000', sources: ['198.18.0.0/15'] });
    t.match(await maddr(tb, 'relay'), /239\.9\.9\.9/, 'joined once the kernel allows it');
    await relays.removeRelay('j');
    await groupRoute(tb, 'origin');
    const rx = await startPorts(bed, 's1', tb.addr('s1'), [7300], 200, 15_000, 1500);
    await send(bed, endpoint(tb.addr('origin'), 4444), listen, 200, 1000, 200);
    const r = (await rx.result).ports['7300'];
    t.same({ received: r.received, missing: r.missing, dups: r.dups }, { received: 200, missing: 0, dups: 0 }, 'the running relay relayed all along');
  });
}
