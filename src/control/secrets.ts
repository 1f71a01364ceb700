import { invalid, notFound, type Problem, type Secret } from '../model/index.js';
import type { Store } from '../store/types.js';
import { requireWrite, type Caller } from './caller.js';
import type { Sealer } from './sealer.js';

/** The largest value the store takes, in bytes of UTF-8: enough for keys and certificates, not a file store. */
export const SECRET_VALUE_MAX_BYTES = 64 * 1024;
export const SECRET_NAME_MAX = 255;

/** `db/password`: segments of letters, digits, `_`, `.` and `-`, joined by `/`. */
const SEGMENT = /^[A-Za-z0-9_.-]+$/;

/** What anyone may learn about a secret: never its value, sealed or not. */
export interface SecretMeta {
  name: string;
  createdAt: string;
  updatedAt: string;
}

export const secretMeta = (s: Secret): SecretMeta => ({ name: s.name, createdAt: s.createdAt, updatedAt: s.updatedAt });

/** The problems with a secret name; empty when it is fine. */
export function secretNameProblems(name: unknown, path = '/name'): Problem[] {
  const rule = 'must be 1-255 characters of letters, digits, "_", "." and "-" in "/"-separated segments, like db/password';
  if (typeof name !== 'string' || name === '' || name.length > SECRET_NAME_MAX) return [{ path, message: rule }];
  // "." and ".." would be resolved away by URL handling; an empty segment is a stray slash.
  const bad = name.split('/').some((seg) => !SEGMENT.test(seg) || seg === '.' || seg === '..');
  return bad ? [{ path, message: rule }] : [];
}

/**
 * The secret store: values go in sealed (AES-256-GCM) and come out only to the agent that runs a pod
 * naming them (AgentService.secretsFor). Secrets belong to the caller's owner, admins included:
 * names are unique per owner and a pod's references resolve against its own owner, so there is no
 * "everyone's" view that could be addressed by name.
 */
export class SecretService {
  constructor(
    private readonly store: Store,
    private readonly sealer: Sealer,
    /** Called after a value is set, so agents waiting on a missing secret hear of it now rather than at their next watch. */
    private readonly onChanged: () => void = () => undefined,
  ) {}

  /** Creates or replaces; `created` says which. */
  async put(caller: Caller, name: string, value: unknown): Promise<{ secret: SecretMeta; created: boolean }> {
    requireWrite(caller, 'write secrets');
    const problems = secretNameProblems(name);
    if (typeof value !== 'string') problems.push({ path: '/value', message: 'is required (a string)' });
    else if (Buffer.byteLength(value, 'utf8') > SECRET_VALUE_MAX_BYTES) problems.push({ path: '/value', message: `must be at most ${SECRET_VALUE_MAX_BYTES} bytes` });
    if (problems.length) throw invalid(problems);
    const at = new Date().toISOString();
    const sealed = this.sealer.seal(value as string);
    const result = await this.store.transaction(async (tx) => {
      const before = await tx.getSecret(caller.owner, name);
      const secret = await tx.putSecret({ owner: caller.owner, name, valueSealed: sealed, createdAt: before?.createdAt ?? at, updatedAt: at });
      return { secret: secretMeta(secret), created: before === undefined };
    });
    this.onChanged();
    return result;
  }

  async get(caller: Caller, name: string): Promise<SecretMeta> {
    const s = secretNameProblems(name).length ? undefined : await this.store.getSecret(caller.owner, name);
    if (!s) throw notFound('secret', name);
    return secretMeta(s);
  }

  async list(caller: Caller): Promise<SecretMeta[]> {
    return (await this.store.listSecrets(caller.owner)).map(secretMeta);
  }

  async remove(caller: Caller, name: string): Promise<void> {
    requireWrite(caller, 'delete secrets');
    await this.get(caller, name);
    await this.store.deleteSecret(caller.owner, name);
  }
}
