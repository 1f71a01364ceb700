import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Encrypts secrets at rest (registry passwords) with AES-256-GCM under a key kept in the data dir. */
export class Sealer {
  private constructor(private readonly key: Buffer) {}

  /** Loads `<dataDir>/secret.key`, creating it (mode 0600) on first start. */
  static async open(dataDir: string): Promise<Sealer> {
    const path = join(dataDir, 'secret.key');
    try {
      const text = (await readFile(path, 'utf8')).trim();
      return new Sealer(Buffer.from(text, 'base64'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const key = randomBytes(32);
    // 'wx' so two servers starting on one data dir cannot each write a different key.
    await writeFile(path, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    await chmod(path, 0o600);
    return new Sealer(Buffer.from((await readFile(path, 'utf8')).trim(), 'base64'));
  }

  static fromKey(key: Buffer): Sealer {
    return new Sealer(key);
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join('.');
  }

  open(sealed: string): string {
    const [v, iv, tag, body] = sealed.split('.');
    if (v !== 'v1' || !iv || !tag || body === undefined) throw new Error('not a sealed value');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
  }
}
