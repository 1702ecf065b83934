// Small SVG charts the bench writes next to its result tables: lines over a numeric x
// axis (log scale for hierarchy sizes) and grouped bars. Plain SVG 1.1, no script, no fonts.

export interface Series {
  name: string;
  points: [number, number][];
}

const W = 640;
const H = 360;
const M = { left: 70, right: 170, top: 40, bottom: 50 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function frame(title: string, yLabel: string, xLabel: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<text x="16" y="${(M.top + H - M.bottom) / 2}" transform="rotate(-90 16 ${(M.top + H - M.bottom) / 2})" text-anchor="middle">${esc(yLabel)}</text>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 10}" text-anchor="middle">${esc(xLabel)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Lines: x on a log scale when `logX` (hierarchy sizes), y linear from 0. */
export function lineChart(o: { title: string; xLabel: string; yLabel: string; series: Series[]; logX?: boolean }): string {
  const xs = o.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = o.series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const fx = (x: number) => (o.logX ? Math.log10(Math.max(1, x)) : x);
  const [x0, x1] = [Math.min(...xs.map(fx)), Math.max(...xs.map(fx))];
  const yMax = niceMax(Math.max(0, ...ys));
  const px = (x: number) => M.left + ((fx(x) - x0) / Math.max(1e-9, x1 - x0)) * (W - M.left - M.right);
  const py = (y: number) => H - M.bottom - (y / yMax) * (H - M.top - M.bottom);
  const body: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const y = (yMax * i) / 4;
    body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`, `<text x="${M.left - 6}" y="${py(y) + 4}" text-anchor="end">${num(y)}</text>`);
  }
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    body.push(`<text x="${px(x)}" y="${H - M.bottom + 16}" text-anchor="middle">${x.toLocaleString('en-US')}</text>`);
  }
  body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`, `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#333"/>`);
  o.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    body.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) body.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="3" fill="${c}"/>`);
    body.push(`<rect x="${W - M.right + 12}" y="${M.top + i * 20}" width="12" height="12" fill="${c}"/>`, `<text x="${W - M.right + 30}" y="${M.top + i * 20 + 10}">${esc(s.name)}</text>`);
  });
  return frame(o.title, o.yLabel, o.xLabel, body);
}

/** Grouped bars: one group per category, one bar per series. */
export function barChart(o: { title: string; yLabel: string; categories: string[]; series: { name: string; values: number[] }[] }): string {
  const ys = o.series.flatMap((s) => s.values).filter(Number.isFinite);
  const yMax = niceMax(Math.max(0, ...ys));
  const plotW = W - M.left - M.right;
  const groupW = plotW / Math.max(1, o.categories.length);
  const barW = (groupW * 0.8) / Math.max(1, o.series.length);
  const py = (y: number) => H - M.bottom - (y / yMax) * (H - M.top - M.bottom);
  const body: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const y = (yMax * i) / 4;
    body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`, `<text x="${M.left - 6}" y="${py(y) + 4}" text-anchor="end">${num(y)}</text>`);
  }
  o.categories.forEach((cat, g) => {
    body.push(`<text x="${M.left + g * groupW + groupW / 2}" y="${H - M.bottom + 16}" text-anchor="middle">${esc(cat)}</text>`);
    o.series.forEach((s, i) => {
      const v = s.values[g];
      if (v === undefined || !Number.isFinite(v)) return;
      const x = M.left + g * groupW + groupW * 0.1 + i * barW;
      body.push(`<rect x="${x.toFixed(1)}" y="${py(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(H - M.bottom - py(v)).toFixed(1)}" fill="${COLORS[i % COLORS.length]}"/>`);
      body.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(py(v) - 4).toFixed(1)}" text-anchor="middle" font-size="10">${num(v)}</text>`);
    });
  });
  o.series.forEach((s, i) => {
    body.push(`<rect x="${W - M.right + 12}" y="${M.top + i * 20}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`, `<text x="${W - M.right + 30}" y="${M.top + i * 20 + 10}">${esc(s.name)}</text>`);
  });
  body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`);
  return frame(o.title, o.yLabel, '', body);
}
