// The V8 flag every tiergate Node process runs with: npm start, the Docker image's
// gateway and tenant service, the gateway's cluster workers (added by the primary if
// it was started without it), and every Node process of the benchmark, baselines too.
//
// Why: both services keep caches whose entries are replaced all the time (verified
// tokens and signed assertions in the gateway, verified assertions in the tenant
// service), so a steady trickle of objects outlives the young generation. With V8's
// own sizing the old generation's limit stays just above what is live, and under load
// that trickle sets off a full mark-compact every few seconds, each one stopping the
// process. Starting the limit at 128 MB lets garbage pile up for much longer between
// full collections, so they are rare (run the benchmark with `--trace-gc` to see the
// pauses). The cost is memory: each process holds up to about 100 MB more garbage
// between full collections.
export const OLD_SPACE_INITIAL_MB = 128;

const FLAG = '--initial-old-space-size';

/** The flags, as a process's command line takes them. */
export const NODE_HEAP_FLAGS: readonly string[] = [`${FLAG}=${OLD_SPACE_INITIAL_MB}`];

/** `execArgv` with the heap flag added, unless the process was given one already (an operator's own value wins). */
export function withHeapFlags(execArgv: readonly string[]): string[] {
  // V8 reads `_` and `-` in a flag's name alike.
  const given = execArgv.some((arg) => arg.split('=')[0]!.replaceAll('_', '-') === FLAG);
  return given ? [...execArgv] : [...execArgv, ...NODE_HEAP_FLAGS];
}
