import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Debian's chromium (apt package `chromium`, installed by .ci/run). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Where failing UI tests leave a screenshot (and UI_SCREENSHOTS=1 leaves every named one). */
export const SCREENSHOT_DIR = join(process.cwd(), 'test-results', 'ui');

export interface TestBrowser {
  browser: Browser;
  newPage(options?: { width?: number; height?: number; token?: string; lang?: 'en' | 'ru' }): Promise<{ context: BrowserContext; page: Page }>;
  close(): Promise<void>;
}

/**
 * Chromium headless, with a fresh profile and everything that could call home turned
 * off: the UI must work with no network beyond the api under test.
 */
export async function launchBrowser(base: string): Promise<TestBrowser> {
  // Playwright refuses a --user-data-dir argument for launch(): it gives every launch a
  // fresh temporary profile of its own (--user-data-dir=<tmp>/playwright_chromiumdev_profile-*).
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    browser,
    async newPage(options = {}) {
      const context = await browser.newContext({ baseURL: base, viewport: { width: options.width ?? 1280, height: options.height ?? 860 }, locale: options.lang === 'ru' ? 'ru-RU' : 'en-US' });
      // Anything that leaves the api under test is a bug in an offline UI.
      await context.route((url) => !url.href.startsWith(base), (route) => route.abort());
      const page = await context.newPage();
      await page.addInitScript(({ token, lang }) => {
        if (token && !sessionStorage.getItem('ragmesh.token')) sessionStorage.setItem('ragmesh.token', token);
        if (lang && !localStorage.getItem('ragmesh.lang')) localStorage.setItem('ragmesh.lang', lang);
      }, { token: options.token ?? '', lang: options.lang ?? 'en' });
      return { context, page };
    },
    async close() {
      await browser.close();
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name.replace(/[^a-z0-9-]+/gi, '-')}.png`);
  await page.screenshot({ path, fullPage: true }).catch(() => undefined);
  return path;
}

/** Runs a browser step; on failure saves a screenshot of the page next to the error. */
export async function withScreenshot<T>(page: Page, name: string, step: () => Promise<T>): Promise<T> {
  try {
    const result = await step();
    if (process.env.UI_SCREENSHOTS === '1') await screenshot(page, name);
    return result;
  } catch (err) {
    const path = await screenshot(page, `FAILED-${name}`);
    (err as Error).message += `\n(screenshot: ${path})`;
    throw err;
  }
}
