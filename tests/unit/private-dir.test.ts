import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ASSERTION_KEY_FILE, createAssertionSigner } from '../../src/gateway/assertion-signer.js';
import { loadOrCreateDevIssuerKeys } from '../../src/gateway/dev-issuer.js';
import { ensurePrivateDir } from '../../src/shared/private-dir.js';
import { DataDirLockedError, LOCK_FILE, lockDataDir } from '../../src/stack/data-lock.js';

const root = mkdtempSync(join(tmpdir(), 'tiergate-private-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const mode = (p: string) => statSync(p).mode & 0o777;

describe('ensurePrivateDir', () => {
  it('creates the folder and its missing parents 0700', () => {
    const dir = join(root, 'a', 'b');
    ensurePrivateDir(dir);
    expect([mode(join(root, 'a')), mode(dir)]).toEqual([0o700, 0o700]);
  });

  it('narrows a folder others could read to 0700 and says so', () => {
    const dir = join(root, 'wide');
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    const said: string[] = [];
    ensurePrivateDir(dir, (line) => said.push(line));
    expect(mode(dir)).toBe(0o700);
    expect(said).toEqual([`tiergate: ${dir} was mode 0755 (readable by other users); it is now 0700`]);
    ensurePrivateDir(dir, (line) => said.push(line));
    expect(said).toHaveLength(1);
  });
});

describe('the keys tiergate writes', () => {
  it('the assertion key: its folder 0700, the file 0600; a key file others could read is narrowed', async () => {
    const dir = join(root, 'data1');
    const keyFile = join(dir, ASSERTION_KEY_FILE);
    await createAssertionSigner({ audience: 'a', ttlSeconds: 60, keyFile });
    expect([mode(dir), mode(keyFile)]).toEqual([0o700, 0o600]);
    chmodSync(keyFile, 0o644);
    await createAssertionSigner({ audience: 'a', ttlSeconds: 60, keyFile });
    expect(mode(keyFile)).toBe(0o600);
  });

  it('the development issuer: the data folder and its own folder 0700, the private key 0600', async () => {
    const dir = join(root, 'data2');
    await loadOrCreateDevIssuerKeys(dir);
    expect([mode(dir), mode(join(dir, 'dev-issuer')), mode(join(dir, 'dev-issuer', 'private.jwk.json'))]).toEqual([0o700, 0o700, 0o600]);
  });
});

describe('lockDataDir', () => {
  it('refuses while a live process holds the folder, and takes over a file left by one that is gone', async () => {
    const dir = join(root, 'locked');
    ensurePrivateDir(dir);
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      writeFileSync(join(dir, LOCK_FILE), `${holder.pid}\n`);
      expect(() => lockDataDir(dir)).toThrow(DataDirLockedError);
      expect(() => lockDataDir(dir)).toThrow(`tiergate (pid ${holder.pid}) is running on this data folder (${join(dir, LOCK_FILE)})`);
    } finally {
      const gone = new Promise((r) => holder.once('exit', r));
      holder.kill('SIGKILL');
      await gone;
    }
    const release = lockDataDir(dir);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    expect(mode(join(dir, LOCK_FILE))).toBe(0o600);
    release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });
});
