// Local state (signing keys, PGlite, OpenFGA's SQLite file) is readable by this
// user only: folders 0700, secret files 0600.
import { chmodSync, mkdirSync, statSync } from 'node:fs';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `dir` (and missing parents) mode 0700. A folder that already exists with
 * access for group or others is narrowed to 0700, and `warn` says so: whatever it
 * held was readable by other users until now.
 */
export function ensurePrivateDir(dir: string, warn: (line: string) => void = () => undefined): string {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (process.platform === 'win32') return dir;
  const mode = statSync(dir).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    chmodSync(dir, PRIVATE_DIR_MODE);
    warn(`tiergate: ${dir} was mode ${mode.toString(8).padStart(4, '0')} (readable by other users); it is now 0700`);
  }
  return dir;
}
