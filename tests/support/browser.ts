// Debian's Chromium (/usr/bin/chromium) driven through playwright-core: a real browser
// for the console's end-to-end tests. Each user gets a fresh context (nothing shared:
// the console keeps its token in memory); screenshots go to test-results/console/
// (git-ignored), the run's artifacts.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { owned } from './cleanup.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = join(REPO_ROOT, 'test-results', 'console');

export async function launchChromium(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 60_000,
  });
  owned(() => browser.close());
  return browser;
}

export interface ConsolePage {
  context: BrowserContext;
  page: Page;
  /** Every console message and page error: a CSP violation or an uncaught error shows here. */
  errors: string[];
}

export async function openPage(browser: Browser, width = 1280, height = 900): Promise<ConsolePage> {
  const context = await browser.newContext({ viewport: { width, height } });
  context.setDefaultTimeout(20_000);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return { context, page, errors };
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}
