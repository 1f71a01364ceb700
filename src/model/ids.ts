import { randomBytes } from 'node:crypto';

declare const brand: unique symbol;
/** A string that the type checker keeps apart from other strings of another kind. */
export type Brand<T, B extends string> = T & { readonly [brand]: B };

export type PodId = Brand<string, 'PodId'>;
export type InstanceId = Brand<string, 'InstanceId'>;
export type NodeId = Brand<string, 'NodeId'>;
export type NetworkVolumeId = Brand<string, 'NetworkVolumeId'>;
export type TemplateId = Brand<string, 'TemplateId'>;
export type RegistryAuthId = Brand<string, 'RegistryAuthId'>;
export type SshKeyId = Brand<string, 'SshKeyId'>;
export type ApiKeyId = Brand<string, 'ApiKeyId'>;
/** The owner of pods, volumes, templates, keys: one user or team. */
export type OwnerId = Brand<string, 'OwnerId'>;

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/** Lowercase base-36 of the given length from a CSPRNG; rejection sampling keeps it uniform. */
export function randomBase36(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 252) out += ALPHABET[byte % 36];
      if (out.length === length) break;
    }
  }
  return out;
}

/** As RunPod: 14 lowercase base-36 characters, so `{podId}-{port}.domain` is a valid host label. */
export const POD_ID_PATTERN = /^[0-9a-z]{14}$/;

export const newPodId = (): PodId => randomBase36(14) as PodId;
export const newNodeId = (): NodeId => randomBase36(12) as NodeId;
export const newNetworkVolumeId = (): NetworkVolumeId => randomBase36(10) as NetworkVolumeId;
export const newTemplateId = (): TemplateId => randomBase36(10) as TemplateId;
export const newRegistryAuthId = (): RegistryAuthId => randomBase36(16) as RegistryAuthId;
export const newSshKeyId = (): SshKeyId => randomBase36(10) as SshKeyId;
export const newApiKeyId = (): ApiKeyId => randomBase36(10) as ApiKeyId;

/** Instance ids read `{podId}-{ordinal}`; the ordinal is stable across restarts and resets. */
export const instanceIdOf = (podId: PodId, ordinal: number): InstanceId => `${podId}-${ordinal}` as InstanceId;
/** The pod an instance id belongs to (the inverse of `instanceIdOf`). */
export const podIdOfInstance = (id: string): PodId => id.slice(0, id.lastIndexOf('-')) as PodId;

export const isPodId = (s: string): s is PodId => POD_ID_PATTERN.test(s);

/**
 * An id a caller sent, typed as the kind it names. Nothing is checked here: a look-up with an id
 * that names nothing finds nothing, and the caller answers not found. The one place such ids
 * become typed, instead of a cast at each look-up.
 */
export const idFromRequest = {
  template: (s: string): TemplateId => s as TemplateId,
  networkVolume: (s: string): NetworkVolumeId => s as NetworkVolumeId,
  registryAuth: (s: string): RegistryAuthId => s as RegistryAuthId,
  apiKey: (s: string): ApiKeyId => s as ApiKeyId,
  node: (s: string): NodeId => s as NodeId,
  pod: (s: string): PodId => s as PodId,
};
