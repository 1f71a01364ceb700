import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { registryOf } from '../model/image-ref.js';
import { needsLoader, pullFailureMessage } from './images.js';
import { contextTar, firstFileOfTar } from './tar.js';

describe('needsLoader', () => {
  it('tells a dynamically linked binary from a static one', async () => {
    // node itself is dynamically linked everywhere it is packaged.
    assert.equal(needsLoader(await readFile(process.execPath)), true);
    const elf = Buffer.alloc(64);
    elf.writeUInt32BE(0x7f454c46, 0);
    elf[4] = 2;
    elf[5] = 1;
    assert.equal(needsLoader(elf), false, 'an ELF header with no program headers has no loader');
    assert.equal(needsLoader(Buffer.from('#!/bin/sh\n')), false, 'not an ELF');
  });
});

describe('registryOf', () => {
  it('reads the registry as Docker does', () => {
    assert.equal(registryOf('nginx:alpine'), 'docker.io');
    assert.equal(registryOf('library/nginx'), 'docker.io');
    assert.equal(registryOf('ghcr.io/acme/app:1'), 'ghcr.io');
    assert.equal(registryOf('127.0.0.1:5000/app'), '127.0.0.1:5000');
    assert.equal(registryOf('localhost/berth-infra:abc'), 'localhost');
  });
});

describe('pullFailureMessage', () => {
  it('says the image is not on the node and why the registry did not give it', () => {
    const refused = pullFailureMessage('127.0.0.1:1/app:1', 'Get "https://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused');
    assert.match(refused, /^image 127\.0\.0\.1:1\/app:1 is not on this node and its registry 127\.0\.0\.1:1 cannot be reached \(.*connection refused\)/);
    assert.match(refused, /docker load/);
    const dns = pullFailureMessage('nginx:alpine', 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host');
    assert.match(dns, /its registry docker\.io cannot be reached/);
    const missing = pullFailureMessage('ghcr.io/acme/nope:1', 'manifest unknown');
    assert.match(missing, /registry ghcr\.io does not give it \(manifest unknown\)/);
    assert.equal(pullFailureMessage('x:1', 'something else'), 'pull of x:1 failed: something else');
  });
});

describe('contextTar', () => {
  it('frames small files as a tar Docker can read', async () => {
    const tar = contextTar([
      { name: 'Dockerfile', content: Buffer.from('FROM scratch\n') },
      { name: 'bin', content: Buffer.alloc(1000, 7), mode: 0o755 },
    ]);
    const first = await firstFileOfTar(tar);
    assert.equal(first.name, 'Dockerfile');
    const chunks: Buffer[] = [];
    for await (const c of first.content) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), 'FROM scratch\n');
  });
});
