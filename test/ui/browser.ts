// Debian's chromium, driven by playwright-core (nothing downloaded): found on PATH, or at HTCGRID_CHROMIUM.
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/** The system chromium's path, or undefined when this machine has none (`apt-get install chromium`). */
export function findChromium(): string | undefined {
  const explicit = process.env.HTCGRID_CHROMIUM;
  if (explicit) return explicit;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    for (const name of ['chromium', 'chromium-browser']) {
      const candidate = path.join(dir, name);
      if (fs.existsSync(candidate)) return candidate;
    }
  }
  return undefined;
}

/** Headless chromium; as root it cannot sandbox itself, so it runs without its sandbox there. */
export function launchChromium(executablePath: string): Promise<Browser> {
  const root = process.getuid?.() === 0;
  return chromium.launch({ executablePath, headless: true, args: root ? ['--no-sandbox'] : [] });
}
