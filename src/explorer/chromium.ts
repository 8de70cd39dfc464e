/**
 * Headless Chromium through playwright-core, for the browser benchmark and the browser tests.
 * The browser is the system's (Debian/Ubuntu `chromium`, or Chrome); playwright-core downloads
 * nothing. PERSONA_CHROMIUM names another executable; PERSONA_CHROMIUM_ARGS adds flags.
 */
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';

const CANDIDATES = [
  '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable', '/snap/bin/chromium',
  '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome', '/Applications/Chromium.app/Contents/MacOS/Chromium',
  'C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe',
];

/** The Chromium executable, or null (with PERSONA_CHROMIUM set, that path or null). */
export function findChromium(): string | null {
  const env = process.env.PERSONA_CHROMIUM;
  if (env) return existsSync(env) ? env : null;
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

export const CHROMIUM_MISSING = 'no Chromium found (Debian/Ubuntu: sudo apt-get install chromium; or set PERSONA_CHROMIUM to a Chrome or Chromium executable)';

/**
 * Flags: WebGPU is behind --enable-unsafe-webgpu on Linux (and Vulkan must be on for a real GPU);
 * --enable-unsafe-swiftshader lets WebGPU and WebGL fall back to SwiftShader, Chromium's CPU
 * implementation of Vulkan, where there is no GPU (what the tests use). --no-sandbox because CI
 * runs as root.
 */
export const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--enable-features=Vulkan', '--ignore-gpu-blocklist', '--no-sandbox'];

export async function launchChromium(): Promise<Browser> {
  const executablePath = findChromium();
  if (!executablePath) throw new Error(CHROMIUM_MISSING);
  const { chromium } = await import('playwright-core');
  const extra = (process.env.PERSONA_CHROMIUM_ARGS ?? '').split(/\s+/).filter(Boolean);
  return chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ARGS, ...extra] });
}
