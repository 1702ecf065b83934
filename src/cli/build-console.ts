// `npm run build` (first step): bundles the web console (console/, Vite) into dist/console
// when the bundle is missing or older than its sources (see src/stack/console-build.ts);
// a current bundle is left as it is, so a gateway serving it is never handed a half-written one.
import { ConsoleBuildError, consoleBuildReason, ensureConsoleBuilt } from '../stack/console-build.js';

try {
  const reason = consoleBuildReason();
  await ensureConsoleBuilt((line) => process.stderr.write(`${line}\n`));
  if (reason === undefined) process.stderr.write('tiergate: the console bundle (dist/console) is current\n');
} catch (err) {
  process.stderr.write(`${err instanceof ConsoleBuildError || err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
