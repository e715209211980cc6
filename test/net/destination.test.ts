// SPDX-License-Identifier: MIT
// makeDestination: the entry a lane writes, from an endpoint and the kernel's tables.
import t from 'tap';
import { parseEndpoint } from '../../src/net/address';
import { destinationFromHop, makeDestination } from '../../src/net/destination';
import type { NextHop } from '../../src/net/neighbour';
import { Testbed, skipUnlessRoot } from '../helpers/testbed';

const hop: NextHop = {
  family: 4, dst: '198.18.0.2', dev: 'veth0', ifindex: 10, mtu: 1500, gateway: null,
  srcAddr: '198.18.0.1', mac: '02:00:00:00:00:02', srcMac: '02:00:00:00:00:01',
};

t.test('from a resolved hop: fields, defaults, options', async (t) => {
  t.same(destinationFromHop(parseEndpoint('198.18.0.2:6000'), hop), {
    family: 4, srcAddr: '198.18.0.1', dstAddr: '198.18.0.2', srcPort: 5004, dstPort: 6000,
    srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02',
  });
  const d = destinationFromHop(parseEndpoint('198.18.0.2:6000'), hop, { srcPort: 7000, ttl: 3, dscp: 46 });
  t.equal(d.srcPort, 7000);
  t.equal(d.ttl, 3);
  t.equal(d.dscp, 46);
});

t.test('bad options are refused with the value and the range', async (t) => {
  const to = parseEndpoint('127.0.0.1:6000');
  await t.rejects(makeDestination(to, { ttl: 0 }), { code: 'ERR_INVALID_ARG', message: 'ttl: 0 is not an integer in 1..255' });
  await t.rejects(makeDestination(to, { dscp: 64 }), { code: 'ERR_INVALID_ARG', message: 'dscp: 64 is not an integer in 0..63' });
  await t.rejects(makeDestination(to, { srcPort: 1.5 }), { code: 'ERR_INVALID_ARG', message: 'srcPort: 1.5 is not an integer in 1..65535' });
  await t.rejects(makeDestination({ family: 4, address: '127.0.0.1', port: 0 }), { code: 'ERR_INVALID_ARG', message: 'port: 0 is not an integer in 1..65535' });
  await t.rejects(makeDestination(null as unknown as ReturnType<typeof parseEndpoint>), {
    code: 'ERR_INVALID_ARG', message: 'to: expected an Endpoint from parseEndpoint() ({family, address, port})',
  });
});

if (!skipUnlessRoot(t)) {
  t.test('resolved in the engine namespace (v4 and v6), device checked', async (t) => {
    const tb = await Testbed.create(t, { hosts: ['a', 'b'], links: [['a', 'b']] });
    const v4 = await makeDestination(parseEndpoint(`${tb.addr('b')}:6000`), { netns: tb.ns('a'), dev: 'veth0', dscp: 34 });
    t.same(v4, { family: 4, srcAddr: tb.addr('a'), dstAddr: tb.addr('b'), srcPort: 5004, dstPort: 6000, srcMac: tb.mac('a'), dstMac: tb.mac('b'), dscp: 34 });
    const v6 = await makeDestination(parseEndpoint(`[${tb.addr('b', 6)}]:6000`), { netns: tb.nsPath('a'), srcPort: 6001 });
    t.same(v6, { family: 6, srcAddr: tb.addr('a', 6), dstAddr: tb.addr('b', 6), srcPort: 6001, dstPort: 6000, srcMac: tb.mac('a'), dstMac: tb.mac('b') });
    await t.rejects(makeDestination(parseEndpoint(`${tb.addr('b')}:6000`), { netns: tb.ns('a'), dev: 'lo' }), {
      code: 'ERR_NO_NEIGHBOUR', message: `route to ${tb.addr('b')} leaves through veth0, not through the engine's interface lo`,
    });
  });
}
