import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BASELINE_POLICY, formatPolicy, parsePolicyGrants, policyProblems, UNRESTRICTED_POLICY, widenPolicy } from './policy.js';
import { compilePodSpec } from './spec-compile.js';

const risky = compilePodSpec({
  containers: [
    {
      name: 'a',
      image: 'busybox',
      privileged: true,
      capAdd: ['net_admin', 'CAP_SYS_TIME'],
      endpoints: [
        { name: 'low', containerPort: 80, hostPort: 80 },
        { name: 'high', containerPort: 81, hostPort: 8081 },
        { name: 'any', containerPort: 82, hostPort: 0 },
      ],
    },
  ],
  network: { mode: 'host' },
  volumes: [{ name: 'h', kind: 'host', hostPath: '/srv/data' }],
});

describe('pod security policy', () => {
  it('refuses each risky field under the baseline, naming the field and the grant', () => {
    const problems = policyProblems(risky, BASELINE_POLICY);
    assert.deepEqual(
      problems.map((p) => p.path),
      ['/network/mode', '/volumes(0)/hostPath', '/containers(0)/privileged', '/containers(0)/capAdd(0)', '/containers(0)/capAdd(1)', '/containers(0)/endpoints(0)/hostPort'],
    );
    assert.match(problems[0]!.message, /host network is refused by the pod security policy \(host-network/);
    assert.match(problems[3]!.message, /cap:NET_ADMIN/);
  });

  it('refuses every fixed host port with host-ports=none, and joining the host or a named Docker network', () => {
    const spec = { ...risky, network: { mode: 'container' as const, name: 'host' } };
    const paths = policyProblems(spec, { ...UNRESTRICTED_POLICY, hostNetwork: false, hostPorts: 'none' }).map((p) => p.path);
    assert.deepEqual(paths, ['/network/mode', '/containers(0)/endpoints(0)/hostPort', '/containers(0)/endpoints(1)/hostPort']);
    const named = policyProblems({ ...risky, network: { mode: 'container', name: 'other-team' } }, { ...UNRESTRICTED_POLICY, namedNetworks: false });
    assert.deepEqual(named.map((p) => p.path), ['/network/name']);
  });

  it('passes everything once granted', () => {
    assert.deepEqual(policyProblems(risky, UNRESTRICTED_POLICY), []);
    const grant = parsePolicyGrants('host-network,host-path,privileged,cap:net_admin,cap:SYS_TIME,host-ports=any');
    assert.ok(!('unknown' in grant));
    assert.deepEqual(policyProblems(risky, widenPolicy(BASELINE_POLICY, grant)), []);
  });

  it('reads and writes grants, and never narrows when widening', () => {
    assert.deepEqual(parsePolicyGrants('host-network,bogus,host-ports=all'), { unknown: ['bogus', 'host-ports=all'] });
    const p = widenPolicy(widenPolicy(BASELINE_POLICY, { hostPorts: 'any' }), { hostPorts: 'none', capabilities: ['NET_RAW'] });
    assert.equal(p.hostPorts, 'any');
    assert.equal(formatPolicy(p), 'cap:NET_RAW,host-ports=any');
    assert.equal(formatPolicy(BASELINE_POLICY), 'host-ports=unprivileged');
  });
});
