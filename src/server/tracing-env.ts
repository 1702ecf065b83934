// Whether the OTEL_* variables ask for tracing, without loading the OpenTelemetry SDK:
// the entry points read this first and import ./tracing.ts (the SDK) only when they do,
// so a gateway with tracing off never loads it.
type Env = Readonly<Record<string, string | undefined>>;

export function envValue(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

/** Whether the OTEL_* variables in `env` turn tracing on (throws on a value tiergate does not support). */
export function tracingRequested(env: Env): boolean {
  if (envValue(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return false;
  const exporters = envValue(env, 'OTEL_TRACES_EXPORTER');
  if (exporters !== undefined) {
    const names = exporters.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
    const unsupported = names.filter((n) => n !== 'otlp' && n !== 'none');
    if (unsupported.length > 0) throw new Error(`OTEL_TRACES_EXPORTER: ${unsupported.join(', ')} is not supported (otlp or none)`);
    return names.includes('otlp');
  }
  return envValue(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined || envValue(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined;
}

let sdk: typeof import('./tracing.js') | undefined;

/** Starts tracing when `env` asks for it (loading the SDK then); undefined when it does not. */
export async function startTracingIfRequested(env: Env = process.env): Promise<{ shutdown(): Promise<void> } | undefined> {
  if (!tracingRequested(env)) return undefined;
  sdk = await import('./tracing.js');
  return sdk.startTracing(env);
}

/** Exports what is queued and stops tracing, if it was started; never rejects (for the exit path). */
export async function stopTracing(): Promise<void> {
  await sdk?.stopTracing();
}
