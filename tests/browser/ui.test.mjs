// tests/browser/ui.test.mjs — the web UI in a real browser (Debian's
// chromium, driven by playwright-core), against a real `stagepipe serve`
// whose jobs run on the real engine.  tests/integration/test_ui_engine.sh
// prepares the server and the repository and runs this with:
//
//   BASE        the server, http://127.0.0.1:PORT
//   ADMIN       the admin token (for the cancel button)
//   PUSH        a shell command: `$PUSH BRANCH` sends a signed push of that
//               branch's head and prints the new job's id
//   SHOTS       a folder for the screenshots of each page (test artefacts)
//   BIGLOG      a shell command: `$BIGLOG JOB` makes that job's test log
//               200 MB, ending with the line "the end of a 200 MB log"
//
// Each check waits for what it wants to see (no fixed sleeps); the first
// failed check ends the run with a message and a screenshot.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const BASE = process.env.BASE;
const ADMIN = process.env.ADMIN;
const PUSH = process.env.PUSH;
const SHOTS = process.env.SHOTS;
const BIGLOG = process.env.BIGLOG;
const JOB_MS = 10 * 60 * 1000;
mkdirSync(SHOTS, { recursive: true });

const browser = await chromium.launch({
	executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
	args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
		'--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
page.on('request', (r) => {
	const u = new URL(r.url());
	if (u.origin !== new URL(BASE).origin && u.protocol !== 'data:')
		problems.push(`fetched from outside: ${r.url()}`);
});

let step = 'start';
async function shot(name) {
	await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}
async function fail(msg) {
	console.error(`FAIL (${step}): ${msg}`);
	try { await shot(`failed-${step.replace(/\W+/g, '-')}`); } catch { /* the page may be gone */ }
	await browser.close();
	process.exit(1);
}
function push(branch) {
	const out = execFileSync('sh', ['-c', `${PUSH} ${branch}`], { encoding: 'utf8' }).trim();
	if (!/^\d+$/.test(out))
		throw new Error(`push ${branch}: ${out}`);
	return out;
}
async function api(path) {
	const r = await fetch(BASE + path, { headers: { Authorization: `Bearer ${ADMIN}` } });
	return r.json();
}
async function waitFinal(id) {
	for (let t = 0; t < JOB_MS; t += 1000) {
		const j = await api(`/api/jobs/${id}`);
		if (['passed', 'failed', 'error', 'cancelled', 'skipped'].includes(j.state))
			return j;
		await new Promise((r) => setTimeout(r, 1000));
	}
	throw new Error(`job ${id} not final`);
}

try {
	// ---- the job list: a webhook's job appears and turns passed, no reload --
	step = 'jobs page';
	await page.goto(BASE + '/');
	await page.waitForSelector('main');
	let navigations = 0;
	page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });
	const j1 = push('main');
	const row = page.locator(`[data-testid="job-row"][data-job-id="${j1}"]`);
	await row.waitFor({ timeout: 30000 }).catch(() => fail(`job ${j1} never appeared in the list`));
	await page.locator(`[data-testid="job-row"][data-job-id="${j1}"][data-state="running"]`)
		.waitFor({ timeout: 120000 }).catch(() => {});
	await shot('jobs-running');
	await page.locator(`[data-testid="job-row"][data-job-id="${j1}"][data-state="passed"]`)
		.waitFor({ timeout: JOB_MS }).catch(() => fail(`job ${j1} never showed passed`));
	if (navigations !== 0)
		await fail(`the page reloaded (${navigations} navigations)`);
	const rowText = await row.innerText();
	if (!/passed/i.test(rowText))
		await fail(`the row says no "passed" in words: ${rowText}`);
	await shot('jobs');

	// ---- the job page: 17 passed, the coverage ------------------------------
	step = 'job page';
	await page.goto(`${BASE}/jobs/${j1}`);
	const tests = page.locator('[data-testid="stage-row"][data-stage="test"] [data-testid="stage-tests"]');
	await tests.waitFor({ timeout: 15000 }).catch(() => fail('no test counts on the job page'));
	if (!/17 passed/.test(await tests.innerText()))
		await fail(`test counts: ${await tests.innerText()}`);
	const cov = page.locator('[data-testid="stage-row"][data-stage="test"] [data-testid="stage-coverage"]');
	if (!/\d+(\.\d+)?\s*%/.test(await cov.innerText()))
		await fail(`coverage: ${await cov.innerText()}`);
	if (!/passed/i.test(await page.locator('[data-testid="job-state"]').innerText()))
		await fail('the job state does not say passed');
	await page.locator('[data-testid="log-line"]').first().waitFor({ timeout: 15000 })
		.catch(() => fail('no log lines on the job page'));
	// the needs graph: test → package
	if (await page.locator('.graph svg .edge').count() !== 1 ||
	    await page.locator('.graph svg .node').count() !== 2)
		await fail('the stages graph is not test → package');
	await shot('job-passed');

	// ---- a 200 MB log: its end shows, and only a window of it is fetched ----
	step = 'big log';
	execFileSync('sh', ['-c', `${BIGLOG} ${j1}`]);
	let logBytes = 0;
	const countLog = async (resp) => {
		if (!resp.url().includes('/log?'))
			return;
		const len = Number(resp.headers()['content-length'] || 0);
		logBytes += len;
	};
	page.on('response', countLog);
	await page.goto(`${BASE}/jobs/${j1}`);
	await page.locator('[data-testid="log"]', { hasText: 'the end of a 200 MB log' })
		.waitFor({ timeout: 30000 }).catch(() => fail('the end of the 200 MB log never showed'));
	page.off('response', countLog);
	if (logBytes > 2 * 1024 * 1024)
		await fail(`the page fetched ${logBytes} bytes of the 200 MB log`);
	console.log(`ui: 200 MB log: ${logBytes} bytes fetched to show its end`);
	await shot('job-big-log');

	// ---- a failing job: the test's name and its assertion -------------------
	step = 'failing job';
	const j2 = push('broken');
	await waitFinal(j2);
	await page.goto(`${BASE}/jobs/${j2}`);
	const failure = page.locator('[data-testid="failure"]').first();
	await failure.waitFor({ timeout: 15000 }).catch(() => fail('no failing test listed'));
	const ft = await failure.innerText();
	if (!/test_broken_on_purpose/.test(ft) || !/AssertionError: one and one make two/.test(ft))
		await fail(`the failure lacks the name or the assertion: ${ft}`);
	if (!/failed/i.test(await page.locator('[data-testid="job-state"]').innerText()))
		await fail('the job state does not say failed');
	await shot('job-failed');

	// ---- the badge ----------------------------------------------------------
	step = 'badges';
	for (const [branch, want] of [['main', 'passed'], ['broken', 'failed']]) {
		const r = await fetch(`${BASE}/badge/app/${branch}.svg`);
		const svg = await r.text();
		if (r.status !== 200 || !/image\/svg\+xml/.test(r.headers.get('content-type')) ||
		    !svg.includes(want))
			await fail(`badge of ${branch}: ${r.status} ${svg.slice(0, 200)}`);
	}

	// ---- a running stage's live log, then cancel from the button ------------
	step = 'live log';
	const j3 = push('slow');
	await page.goto(`${BASE}/jobs/${j3}`);
	await page.locator('[data-testid="stage-row"][data-stage="test"]')
		.waitFor({ timeout: JOB_MS }).catch(() => fail('the running job shows no test stage'));
	// wait until the test stage runs and has printed a test line
	const lines = page.locator('[data-testid="log"] [data-testid="log-line"]');
	const t0 = Date.now();
	let before = 0;
	while (Date.now() - t0 < JOB_MS) {
		const txt = await page.locator('[data-testid="log"]').innerText().catch(() => '');
		if (/test_step_0/.test(txt)) { before = await lines.count(); break; }
		await page.waitForTimeout(500);
	}
	if (!before)
		await fail('the live log never showed the first test line');
	const follow = page.locator('[data-testid="follow"]');
	if (await follow.count() && !(await follow.isChecked().catch(() => true)))
		await follow.check();
	await page.waitForFunction(([n]) =>
		document.querySelectorAll('[data-testid="log"] [data-testid="log-line"]').length > n &&
		/test_step_3/.test(document.querySelector('[data-testid="log"]').innerText),
	[before], { timeout: 120000 }).catch(() => fail('the live log did not follow the stage'));
	await shot('job-live-log');

	step = 'cancel';
	// unlock the admin actions with the token (the login form)
	if (!(await page.locator('[data-testid="cancel"]').isVisible().catch(() => false))) {
		const login = page.locator('[data-testid="login"]');
		if (!(await login.isVisible().catch(() => false))) {
			const opener = page.locator('[data-testid="login-open"]');
			if (await opener.count())
				await opener.click();
		}
		await login.locator('input').fill(ADMIN);
		await login.locator('input').press('Enter');
	}
	const cancel = page.locator('[data-testid="cancel"]');
	await cancel.waitFor({ state: 'visible', timeout: 15000 })
		.catch(() => fail('no cancel button after logging in'));
	page.once('dialog', (d) => d.accept());
	await cancel.click();
	await page.locator('[data-testid="job-state"]', { hasText: /cancel/i })
		.waitFor({ timeout: 120000 }).catch(() => fail('the job did not show cancelled'));
	const j3state = (await api(`/api/jobs/${j3}`)).state;
	if (j3state !== 'cancelled')
		await fail(`job ${j3} is ${j3state} in the API`);
	await shot('job-cancelled');

	// ---- agents and repos pages, phone width ---------------------------------
	step = 'repos page';
	await page.goto(`${BASE}/repos`);
	await page.locator('[data-testid="branch-row"]').first().waitFor({ timeout: 15000 })
		.catch(() => fail('no branch rows on the repos page'));
	await shot('repos');
	step = 'agents page';
	await page.goto(`${BASE}/agents`);
	await page.waitForSelector('main');
	await page.waitForTimeout(500);
	await shot('agents');
	step = 'phone width';
	await page.setViewportSize({ width: 375, height: 800 });
	await page.goto(`${BASE}/jobs/${j2}`);
	await page.locator('[data-testid="failure"]').first().waitFor({ timeout: 15000 });
	const overflow = await page.evaluate(() =>
		document.documentElement.scrollWidth - document.documentElement.clientWidth);
	if (overflow > 2)
		await fail(`the job page is ${overflow}px wider than a phone`);
	await shot('job-phone');
	await page.goto(`${BASE}/`);
	await page.locator('[data-testid="job-row"]').first().waitFor({ timeout: 15000 });
	await shot('jobs-phone');

	step = 'keyboard';
	await page.setViewportSize({ width: 1280, height: 900 });
	await page.goto(`${BASE}/`);
	await page.locator('[data-testid="job-row"]').first().waitFor({ timeout: 15000 });
	let reached = false;
	for (let i = 0; i < 40 && !reached; i++) {
		await page.keyboard.press('Tab');
		reached = await page.evaluate(() => {
			const a = document.activeElement;
			return !!a && !!a.closest('[data-testid="job-row"]') && a.tagName === 'A';
		});
	}
	if (!reached)
		await fail('no job link is reachable with Tab');
	await page.keyboard.press('Enter');
	await page.locator('[data-testid="job-state"]').waitFor({ timeout: 15000 })
		.catch(() => fail('Enter on a job link did not open the job'));
} catch (e) {
	await fail(e.message);
}
if (problems.length)
	await fail(problems.join('\n'));
await browser.close();
console.log('ui: all checks passed; screenshots in ' + SHOTS);
