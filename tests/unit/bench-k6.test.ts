// What the bench keeps of k6's log: its warnings, which say what a failed request was.
// The lines are k6 v1.8's own, as it printed them for a refused connection.
import { describe, expect, it } from 'vitest';
import { k6Warning } from '../../load/lib/k6.js';

describe('k6Warning', () => {
  it('reads k6 own "Request Failed" line with Go’s error', () => {
    const line =
      'time="2026-11-22T02:11:22Z" level=warning msg="Request Failed" error="Delete \\"http://127.0.0.1:9/x\\": dial tcp 127.0.0.1:9: connect: connection refused"';
    expect(k6Warning(line)).toBe('Request Failed (Delete "http://127.0.0.1:9/x": dial tcp 127.0.0.1:9: connect: connection refused)');
  });

  it('reads a script’s console.warn, escaped quotes and all', () => {
    const line = 'time="2026-11-22T02:11:22Z" level=warning msg="admin DELETE \\"q\\": transport error 1212 (dial: connection refused)" source=console';
    expect(k6Warning(line)).toBe('admin DELETE "q": transport error 1212 (dial: connection refused)');
  });

  it('ignores every other line', () => {
    expect(k6Warning('time="2026-11-22T02:11:22Z" level=info msg="Request Failed" source=console')).toBeUndefined();
    expect(k6Warning('running (00m01.0s), 0/1 VUs, 1 complete and 0 interrupted iterations')).toBeUndefined();
    expect(k6Warning('')).toBeUndefined();
  });
});
