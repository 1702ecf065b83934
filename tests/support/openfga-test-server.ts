// An OpenFGA of the test file's own, to stop or hang (SIGSTOP).
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { startOpenFga, type OpenFgaServer } from '../../src/stack/openfga-server.js';
import { owned } from './cleanup.js';
import { waitFor } from './wait.js';

/**
 * An OpenFGA of this file's own (memory datastore), for tests that stop, hang or
 * cut it: the shared one must keep serving the other files. Stopped at the end of
 * the file (continued first, in case a test left it SIGSTOPped).
 */
export async function startTestOpenFga(): Promise<OpenFgaServer> {
  const fga = await startOpenFga();
  owned(async () => {
    fga.child.process.kill('SIGCONT');
    await fga.stop();
  });
  return fga;
}

/**
 * SIGSTOP, resolved once every thread of the process is stopped. The signal alone is not
 * enough: the kernel wakes one thread to begin the group stop, and until that thread gets
 * a core (on a busy machine, milliseconds) the others, woken by a request, still answer it.
 * Linux only: reads each thread's state from /proc.
 */
export async function suspend(proc: ChildProcess): Promise<void> {
  const pid = proc.pid;
  if (pid === undefined || !proc.kill('SIGSTOP')) throw new Error('suspend: the process is not running');
  const stopped = await waitFor(() => threadStates(pid).every((state) => state === 'T' || state === 't'), 5000, 5);
  if (!stopped) throw new Error(`suspend: pid ${pid} still has running threads 5 s after SIGSTOP (${threadStates(pid).join('')})`);
}

/** The scheduler state letter of each thread of `pid` (/proc/<pid>/task/<tid>/stat, the field after the name). */
function threadStates(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // The name is in parentheses and may itself hold spaces or parentheses: read after the last one.
    const afterName = stat.lastIndexOf(')') + 2;
    return stat.slice(afterName, afterName + 1);
  });
}
