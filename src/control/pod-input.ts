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
  problems.push(...(await referenceProblems(store, caller, { networkVolumeId: merged.networkVolumeId, registryAuthId: merged.registryAuthId })));
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
  if (problems.length || !spec) throw invalid(problems);
  const refused = policyProblems(spec, limits.policy);
  if (refused.length) throw new BerthError('POLICY_DENIED', refused.map((p) => `${p.path}: ${p.message}`).join('; '), { problems: refused });
  // Written as it will be read back: a spec naming a Marathon path but no layout reads as one stored
  // before `networkHolder` was (normalizeSpec), and comparisons with the stored versions must agree.
  return normalizeSpec(spec);
}

/**
 * The ids a pod input names that the caller's team does not have, as problems (as not found: another
 * team's ids are not disclosed). For pods at create and update, and for templates when stored.
 */
export async function referenceProblems(
  store: Store,
  caller: Caller,
  input: Pick<PodInput, 'networkVolumeId' | 'registryAuthId' | 'templateId' | 'secrets'>,
  prefix = '',
): Promise<Problem[]> {
  const problems: Problem[] = [];
  if (typeof input.networkVolumeId === 'string' && input.networkVolumeId) {
    const v = await store.getNetworkVolume(idFromRequest.networkVolume(input.networkVolumeId));
    if (!v || !canSee(caller, v.owner)) problems.push({ path: `${prefix}/networkVolumeId`, message: `network volume ${input.networkVolumeId} not found` });
  }
  if (typeof input.registryAuthId === 'string' && input.registryAuthId) {
    const r = await store.getRegistryAuth(idFromRequest.registryAuth(input.registryAuthId));
    if (!r || !canSee(caller, r.owner)) problems.push({ path: `${prefix}/registryAuthId`, message: `registry credentials ${input.registryAuthId} not found` });
  }
  if (typeof input.templateId === 'string' && input.templateId) {
    const t = await store.getTemplate(idFromRequest.template(input.templateId));
    if (!t || !canSee(caller, t.owner)) problems.push({ path: `${prefix}/templateId`, message: `template ${input.templateId} not found` });
  }
  if (input.secrets && typeof input.secrets === 'object') {
    for (const [name, source] of Object.entries(input.secrets)) {
      if (typeof source === 'string' && !(await store.getSecret(caller.owner, source))) problems.push({ path: `${prefix}/secrets/${name}`, message: `no secret ${source} in the secret store` });
    }
  }
  return problems;
}

function hostPathAllowed(path: string, roots: readonly string[]): boolean {
  if (path.split('/').includes('..')) return false;
  return roots.some((root) => isUnder(path, root));
}

function isUnder(path: string, root: string): boolean {
  const r = root.endsWith('/') ? root : root + '/';
  return path === root || path.startsWith(r);
}
