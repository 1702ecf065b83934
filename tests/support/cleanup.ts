// Stops what a test file started, at the end of that file, so a failing test leaves
// no server or child process behind. Nothing is registered by importing this module:
// a test file that starts servers through tests/support calls useCleanup() once at its
// top level, and a start function refuses to run in a file that did not.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const cleanups = new Set<() => Promise<void>>();
let registered = false;

/** Registers the afterAll hook that stops, last started first, everything this file started. */
export function useCleanup(): void {
  if (registered) return;
  registered = true;
  afterAll(async () => {
    const errors: unknown[] = [];
    // Last started, first stopped: a gateway goes before the upstream it points at.
    for (const stop of [...cleanups].reverse()) {
      await stop().catch((err: unknown) => errors.push(err));
    }
    if (errors.length > 0) throw new AggregateError(errors, 'stopping the test stack failed');
  });
}

/** Runs `stop` at the end of the test file unless it was run before. Returns an idempotent stop. */
export function owned(stop: () => Promise<void>): () => Promise<void> {
  if (!registered) throw new Error('this test file starts servers or children: call useCleanup() at its top level');
  let done: Promise<void> | undefined;
  const once = () => {
    cleanups.delete(once);
    done ??= stop();
    return done;
  };
  cleanups.add(once);
  return once;
}

/** A fresh temporary directory, removed at the end of the file. */
export function tempDir(prefix = 'tiergate-e2e-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  owned(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
