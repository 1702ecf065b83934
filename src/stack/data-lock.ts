// One tiergate process at a time on a data folder: PGlite and the embedded OpenFGA's
// SQLite file belong to the process that opened them. `npm start` and
// `npm run reconcile` hold `<TIERGATE_DATA_DIR>/tiergate.pid` while they run; the file
// names the holder, and a file left by a process that is gone is taken over.
import { openSync, closeSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PRIVATE_FILE_MODE } from '../shared/private-dir.js';

export const LOCK_FILE = 'tiergate.pid';

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
  constructor(
    readonly file: string,
    readonly pid: number,
  ) {
    super(`tiergate (pid ${pid}) is running on this data folder (${file})`);
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock or throws DataDirLockedError; returns its release. The folder must exist. */
export function lockDataDir(dataDir: string): () => void {
  const file = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', PRIVATE_FILE_MODE);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        try {
          if (Number(readFileSync(file, 'utf8').trim()) === process.pid) unlinkSync(file);
        } catch {
          // already gone
        }
      };
      process.once('exit', release);
      return release;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: number;
    try {
      holder = Number(readFileSync(file, 'utf8').trim());
    } catch {
      continue; // released meanwhile
    }
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && running(holder)) throw new DataDirLockedError(file, holder);
    // Left by a process that is gone (or unreadable): take it over.
    try {
      unlinkSync(file);
    } catch {
      // another process took it over first; try again
    }
  }
  throw new Error(`could not take ${file}: another process keeps replacing it`);
}
