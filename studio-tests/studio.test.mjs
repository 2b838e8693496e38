// The studio in a real browser: Debian's chromium, headless, driven by
// playwright-core (no browser download). scripts/studio-test.sh starts
// `he serve` (with a tokens file) and `he studio --server ...` and sets:
//   STUDIO_URL   the address `he studio` printed (with its secret)
//   HE_BIN       the `he` binary (for the plaintext reference, `he preview`)
//   PHOTO        the photo to filter
//   TOKEN        the right API token (the studio was started with it)
//   WORK_DIR     a scratch directory
//   SHOTS_DIR    where the screenshots go (scripts/studio-test.sh: its work
//                directory, or $STUDIO_SHOTS)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { chromium } from 'playwright-core';
import { decodePng, countDifferences } from './png.mjs';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run scripts/studio-test.sh)`);
  return v;
};
const STUDIO_URL = env('STUDIO_URL');
const HE = env('HE_BIN');
const PHOTO = env('PHOTO');
const TOKEN = env('TOKEN');
const WORK = env('WORK_DIR');
const SHOTS = env('SHOTS_DIR');
const JOB_TIMEOUT = 240_000;

let context;
let page;
let profile;

before(async () => {
  profile = mkdtempSync(join(tmpdir(), 'he-studio-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1200, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(STUDIO_URL);
  await page.waitForSelector('body[data-ready]');
  // The secret left the address bar for an HttpOnly cookie.
  assert.ok(!page.url().includes('token='), page.url());
  await page.getByLabel('Key size').selectOption('2048');
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

// The plaintext reference: `he preview` with the same chain.
function reference(name, chainArgs) {
  const out = join(WORK, `${name}-reference.png`);
  execFileSync(HE, ['preview', PHOTO, '-o', out, '--force', ...chainArgs]);
  return decodePng(readFileSync(out));
}

async function jobIds() {
  return page.locator('article.job').evaluateAll((cards) => cards.map((c) => c.dataset.job));
}

// Chooses the photo with the Photo input and waits for its preview.
async function choosePhoto() {
  const before = await page.locator('li.photo').count();
  await page.getByLabel('Photo', { exact: true }).setInputFiles(PHOTO);
  await page.locator('li.photo').nth(before).waitFor();
}

// Clicks Filter privately; returns the new job's card.
async function filterPrivately() {
  const known = new Set(await jobIds());
  await page.getByRole('button', { name: 'Filter privately' }).click();
  await page.waitForFunction((ids) => [...document.querySelectorAll('article.job')]
    .some((c) => !ids.includes(c.dataset.job)), [...known]);
  const id = (await jobIds()).find((j) => !known.has(j));
  return id;
}

const card = (id) => page.locator(`article.job[data-job="${id}"]`);

// Waits for Download result, downloads, and compares every pixel.
async function downloadAndCompare(id, want, name) {
  const link = card(id).getByRole('link', { name: 'Download result' });
  await link.waitFor({ timeout: JOB_TIMEOUT });
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const path = join(WORK, `${name}-studio.png`);
  await download.saveAs(path);
  const got = decodePng(readFileSync(path));
  assert.equal(got.width, want.width);
  assert.equal(got.height, want.height);
  assert.equal(countDifferences(got, want), 0, `${name}: the downloaded result differs from he preview`);
  await assert.doesNotReject(card(id).getByText('Verified:').waitFor());
}

async function setChain(filters, map) {
  // Drop every filter row but the first, then fill them in.
  while (await page.locator('#chain > li').count() > 1) {
    await page.locator('#chain > li').last().getByRole('button', { name: 'Remove' }).click();
  }
  for (let i = 0; i < filters.length; i++) {
    if (i > 0) await page.getByRole('button', { name: 'Add filter' }).click();
    const row = page.locator('#chain > li').nth(i);
    await page.getByLabel(`Filter ${i + 1}`, { exact: true }).selectOption(filters[i].name);
    for (const [p, v] of Object.entries(filters[i].params || {})) {
      await row.getByLabel(p, { exact: true }).fill(v);
    }
  }
  await page.getByLabel('Output mapping').selectOption(map);
}

test('a 3x3 mean of the photo, every pixel as the plaintext filter', async () => {
  await setChain([{ name: 'mean', params: { k: '3' } }], 'saturate');
  await choosePhoto();
  await page.screenshot({ path: join(SHOTS, 'studio-before.png'), fullPage: true });
  const id = await filterPrivately();
  await downloadAndCompare(id, reference('mean', []), 'mean');
  await card(id).getByRole('img', { name: /What the server saw/ }).waitFor();
  await card(id).scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(SHOTS, 'studio-after.png'), fullPage: true });
});

test('a chain of two filters', async () => {
  await setChain([{ name: 'gaussian' }, { name: 'sobel-x' }], 'abs');
  await choosePhoto();
  const id = await filterPrivately();
  await downloadAndCompare(id,
    reference('chain', ['--filter', 'gaussian', '--filter', 'sobel-x', '--map', 'abs']), 'chain');
});

test('a wrong token is shown as an error on the page', async () => {
  await page.getByLabel('Token').fill('he_wrong_token');
  await page.getByRole('button', { name: 'Check connection' }).click();
  await page.locator('#connection.error').getByText(/refused the token/).waitFor();
  // A job sent with it fails in words, not with a blank page.
  await setChain([{ name: 'mean', params: { k: '3' } }], 'saturate');
  await choosePhoto();
  const id = await filterPrivately();
  await card(id).getByRole('alert').getByText(/refused the token/).waitFor({ timeout: JOB_TIMEOUT });
  // The right token again.
  await page.getByLabel('Token').fill(TOKEN);
  await page.getByRole('button', { name: 'Check connection' }).click();
  await page.locator('#connection.ok').getByText(/Connected/).waitFor();
});

test('a reload during a job reattaches to it and it finishes', async () => {
  await setChain([{ name: 'mean', params: { k: '5' } }], 'saturate');
  await choosePhoto();
  const id = await filterPrivately();
  await page.locator(`article.job[data-job="${id}"][data-state="running"]`).waitFor({ timeout: JOB_TIMEOUT });
  await page.reload();
  await page.waitForSelector('body[data-ready]');
  await card(id).waitFor();
  await downloadAndCompare(id, reference('reload', ['-k', '5']), 'reload');
});

test('a region keeps the filter inside its rectangle only', async () => {
  await setChain([{ name: 'mean', params: { k: '5' } }], 'saturate');
  await choosePhoto();
  const photo = page.locator('li.photo').last();
  const region = { x: 40, y: 30, w: 100, h: 80 };
  for (const [k, v] of Object.entries(region)) {
    await photo.getByLabel(k, { exact: true }).fill(String(v));
  }
  await photo.getByRole('button', { name: 'Add region' }).click();
  await photo.getByText('1 region(s)').waitFor();
  const id = await filterPrivately();
  // Expected: the plaintext 5x5 mean inside the rectangle, the photo outside.
  const filtered = reference('region', ['-k', '5']);
  const original = decodePng(readFileSync(PHOTO));
  const want = { ...original, data: Buffer.from(original.data) };
  for (let y = region.y; y < region.y + region.h; y++) {
    const from = (y * original.width + region.x) * original.channels;
    filtered.data.copy(want.data, from, from, from + region.w * original.channels);
  }
  await downloadAndCompare(id, want, 'region');
});

test('a queued or running job can be cancelled', async () => {
  await setChain([{ name: 'mean', params: { k: '3' } }], 'saturate');
  await page.getByLabel('Key size').selectOption('2048');
  await choosePhoto();
  await choosePhoto();
  const known = new Set(await jobIds());
  await page.getByRole('button', { name: 'Filter privately' }).click();
  await page.waitForFunction((ids) => [...document.querySelectorAll('article.job')]
    .filter((c) => !ids.includes(c.dataset.job)).length === 2, [...known]);
  const [second, first] = (await jobIds()).filter((j) => !known.has(j));
  await card(second).getByRole('button', { name: /^Cancel job/ }).click();
  await page.locator(`article.job[data-job="${second}"][data-state="cancelled"]`).waitFor();
  await card(first).getByRole('link', { name: 'Download result' }).waitFor({ timeout: JOB_TIMEOUT });
  assert.equal(await card(second).getByRole('link', { name: 'Download result' }).count(), 0);
});
