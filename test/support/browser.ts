/**
 * Debian's Chromium driven by playwright-core (no browser download), for the console's tests,
 * bench and screenshots. Fails loudly when Chromium or the console's build is missing: a console
 * test must never pass by being skipped.
 */
import { access, constants } from 'node:fs/promises';
import { chromium, type Browser } from 'playwright-core';
import { DEFAULT_CONSOLE_DIR } from '../../src/cli/server.js';

/** Where scripts/setup.sh's ensure_chromium puts it; BERTH_CHROMIUM overrides. */
export const CHROMIUM = process.env.BERTH_CHROMIUM ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  try {
    await access(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(`no Chromium at ${CHROMIUM}: install Debian's (apt-get install chromium; npm test does) or set BERTH_CHROMIUM`);
  }
  try {
    await access(`${DEFAULT_CONSOLE_DIR}/index.html`);
  } catch {
    throw new Error(`the web console is not built (${DEFAULT_CONSOLE_DIR}/index.html is missing): run npm run build:web`);
  }
  // --no-sandbox: tests run as root on CI machines, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}
