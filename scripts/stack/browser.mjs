// @ts-check
// The browser end-to-end tests drive Debian's Chromium (real WebAuthn ceremonies through a
// virtual authenticator). `pnpm test` makes sure it is there before that tier, so a fresh
// machine passes with the README's two commands and nothing done by hand.
import { ensureDebianPackage } from './apt.mjs';

/** Where the tests look for the browser; CHROMIUM_PATH overrides it (test-e2e/support/browser.ts). */
const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** One line a person can act on when the browser cannot be installed from here. */
const INSTALL_HINT =
  'the browser tests need Chromium: `sudo apt-get install -y chromium` (Debian/Ubuntu), ' +
  'or set CHROMIUM_PATH to a Chromium or Chrome binary';

/**
 * Returns when Chromium is at CHROMIUM_PATH. Missing on a Debian-family machine where we are
 * root, it is installed from the distribution's packages (about a minute; never a browser
 * download of a test tool's own, which this kind of machine cannot reach). Otherwise throws
 * MissingDependencyError with the one-line instruction.
 * @param {(line: string) => void} [log]
 */
export function ensureChromium(log = (line) => console.log(line)) {
  ensureDebianPackage(
    {
      pkg: 'chromium',
      path: CHROMIUM_PATH,
      hint: INSTALL_HINT,
      why: 'for the browser tests (about a minute)',
      canInstall: CHROMIUM_PATH === '/usr/bin/chromium',
    },
    log,
  );
}
