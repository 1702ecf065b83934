import { configSchema } from '../../src/config.js';

/**
 * This process's environment without any tiergate setting (every configuration key, and
 * the TIERGATE_* variables the command-line tools read), without the OTEL_* tracing
 * variables and without NODE_OPTIONS, so a
 * child process (a benchmarked service or a test's gateway) sees only what its caller gives it.
 */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k in configSchema.shape || k.startsWith('TIERGATE_') || k.startsWith('OTEL_')) delete env[k];
  }
  delete env.NODE_OPTIONS;
  return env;
}
