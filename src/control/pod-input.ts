/**
 * A caller's pod input made into a spec: the named template merged under it, the model's checks,
 * and the references checked against what the caller may use (network volume, registry login,
 * secrets, host paths the operator allows), every problem collected with its path.
 */
import { BerthError, compilePodSpec, idFromRequest, invalid, mergeLifetime, mergeTemplate, normalizeSpec, policyProblems, type LifetimeInput, type PodInput, type PodSecurityPolicy, type PodSpec, type Problem } from '../model/index.js';
import type { Store } from '../store/types.js';
import { canSee, type Caller } from './caller.js';

/**
 * Validates input into a spec, writing nothing; `withTemplate` merges the named template under it (at
 * create, or when an update names a new one). `hostVolumeRoots`: the host paths pods may mount;
 * `policy`: the pod security policy the caller is held to (checked once the spec is valid).
 */
export async function compilePodInput(
  store: Store,
  limits: { hostVolumeRoots: readonly string[]; policy: PodSecurityPolicy },
  caller: Caller,
  input: PodInput,
  withTemplate = true,
  lifetimeDefault?: LifetimeInput,
): Promise<PodSpec> {
  const { hostVolumeRoots } = limits;
  let merged = input;
  const problems: Problem[] = [];
  let templateLifetime: LifetimeInput | null | undefined;
  if (input.templateId && withTemplate) {
    const t = await store.getTemplate(idFromRequest.template(input.templateId));
    if (!t || !canSee(caller, t.owner)) problems.push({ path: '/templateId', message: `template ${input.templateId} not found` });
    else {
      merged = mergeTemplate(t.pod, input);
      templateLifetime = t.pod.lifetime;
    }
  }
  if (merged.hostNetworkByDefault && merged.network === undefined) {
    merged = { ...merged, network: { mode: limits.policy.hostNetwork ? 'host' : 'bridge', name: null } };
  }
  // The server's default goes under the template's, which goes under the request's, policy by policy.
  if (lifetimeDefault) merged = { ...merged, lifetime: mergeLifetime(mergeLifetime(lifetimeDefault, templateLifetime), input.lifetime) ?? null };
  let spec: PodSpec | undefined;
  try {
    spec = compilePodSpec(merged);
  } catch (e) {
    if (e instanceof BerthError) problems.push(...e.problems);
    else throw e;
  }
  if (merged.networkVolumeId) {
    const v = await store.getNetworkVolume(idFromRequest.networkVolume(merged.networkVolumeId));
    if (!v || !canSee(caller, v.owner)) problems.push({ path: '/networkVolumeId', message: `network volume ${merged.networkVolumeId} not found` });
  }
  for (const [i, v] of (spec?.volumes ?? []).entries()) {
    if (v.kind === 'host' && !hostPathAllowed(v.hostPath, hostVolumeRoots)) {
      problems.push({
        path: `/volumes(${i})/hostPath`,
        message: hostVolumeRoots.length ? `${v.hostPath} is not under a host path the operator allows (${hostVolumeRoots.join(', ')})` : 'host volumes are off: the operator allows none (berth server --allow-host-path)',
      });
    }
  }
  for (const [name, source] of Object.entries(spec?.secrets ?? {})) {
    if (!(await store.getSecret(caller.owner, source))) problems.push({ path: `/secrets/${name}`, message: `no secret ${source} in the secret store` });
  }
  if (merged.registryAuthId) {
    const r = await store.getRegistryAuth(idFromRequest.registryAuth(merged.registryAuthId));
    if (!r || !canSee(caller, r.owner)) problems.push({ path: '/registryAuthId', message: `registry credentials ${merged.registryAuthId} not found` });
  }
  if (problems.length || !spec) throw invalid(problems);
  const refused = policyProblems(spec, limits.policy);
  if (refused.length) throw new BerthError('POLICY_DENIED', refused.map((p) => `${p.path}: ${p.message}`).join('; '), { problems: refused });
  // Written as it will be read back: a spec naming a Marathon path but no layout reads as one stored
  // before `networkHolder` was (normalizeSpec), and comparisons with the stored versions must agree.
  return normalizeSpec(spec);
}

function hostPathAllowed(path: string, roots: readonly string[]): boolean {
  if (path.split('/').includes('..')) return false;
  return roots.some((root) => isUnder(path, root));
}

function isUnder(path: string, root: string): boolean {
  const r = root.endsWith('/') ? root : root + '/';
  return path === root || path.startsWith(r);
}
