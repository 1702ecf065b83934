// startNodeService against real Node child processes: the URL comes from the ready
// line, readiness waits for the health path, and a failed start says why.
import { describe, expect, it } from 'vitest';
import type { ManagedChild } from '../../src/stack/child.js';
import { startNodeService } from '../../src/stack/node-service.js';
import { owned, useCleanup } from '../support/cleanup.js';

useCleanup();

/** Starts `script` (node -e) and stops it at the end of the file whatever happens. */
function start(script: string, extra: { healthPath?: string; timeoutMs?: number } = {}) {
  const seen: { child?: ManagedChild } = {};
  owned(async () => seen.child?.stop());
  const started = startNodeService('sample service', {
    nodeArgs: ['-e', script],
    env: process.env,
    readyUrl: (line) => /^LISTENING (\S+)$/.exec(line)?.[1],
    timeoutMs: extra.timeoutMs ?? 20_000,
    ...(extra.healthPath !== undefined ? { healthPath: extra.healthPath } : {}),
    onSpawn: (c) => {
      seen.child = c;
    },
  });
  return { started, seen };
}

describe('startNodeService', () => {
  it('takes the URL from the ready line and resolves only once the health path answers 2xx', async () => {
    // /healthz answers 503 twice before 200; /probes counts how often it was asked.
    const { started } = start(
      `let probes = 0;
       const s = require('node:http').createServer((req, res) => {
         if (req.url === '/healthz') { probes++; res.statusCode = probes > 2 ? 200 : 503; return res.end(); }
         res.end(String(probes));
       });
       s.listen(0, '127.0.0.1', () => {
         process.stdout.write('starting, not ready yet\\n');
         process.stdout.write('LISTENING http://127.0.0.1:' + s.address().port + '\\n');
       });`,
      { healthPath: '/healthz' },
    );
    const { url, child } = await started;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Number(await (await fetch(`${url}/probes`)).text())).toBe(3);
    await child.stop();
    expect(child.process.signalCode ?? child.process.exitCode).not.toBeNull();
  });

  it('fails with the exit code and the last output when the service exits before it is ready', async () => {
    const { started } = start(`process.stderr.write('cannot bind: EADDRINUSE\\n'); process.exit(3);`);
    await expect(started).rejects.toThrow(/sample service exited before it was ready \(code 3, signal null\):\ncannot bind: EADDRINUSE/);
  });

  it('stops the service and says so when it is not ready in time', async () => {
    const { started, seen } = start(`process.stdout.write('still loading\\n'); setInterval(() => {}, 1000);`, { timeoutMs: 800 });
    await expect(started).rejects.toThrow(/sample service was not ready within 800 ms:\nstill loading/);
    expect(seen.child!.process.signalCode ?? seen.child!.process.exitCode).not.toBeNull();
  });
});
