// Client input quoted in a problem's detail.

/** A short, printable rendering of client input for a problem detail: never huge, never raw control bytes. */
export function excerpt(input: string, max = 48): string {
  const cut = input.length > max ? `${input.slice(0, max)}…` : input;
  return cut.replace(/[^\x20-\x7e…]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
