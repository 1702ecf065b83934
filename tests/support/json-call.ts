// fetch with a JSON body and a JSON (or text) answer.
export interface JsonResponse {
  status: number;
  headers: Headers;
  contentType: string;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

/** fetch with a JSON body and a JSON (or text) answer; `auth` is an Authorization value. */
export async function call(
  baseUrl: string,
  method: string,
  path: string,
  opts: { auth?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<JsonResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.auth) headers.authorization = opts.auth;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
    signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
  });
  const text = await res.text();
  const contentType = res.headers.get('content-type') ?? '';
  let body: unknown = text;
  if (contentType.includes('json') && text !== '') body = JSON.parse(text);
  return { status: res.status, headers: res.headers, contentType, body, text };
}
