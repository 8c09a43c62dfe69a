// What the browser tests share: named checks that keep going after a failure
// (a failed critical check makes the rest fail fast), assert, and polling.

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

/** Polls until fn() is truthy (or throws the last reason) every `step` ms. */
export async function until(fn, what, timeout = 15_000, step = 100) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, step));
  }
}

/** check(name, fn, {critical}) prints one line per check; onFailure(name)
 * runs after a failure (screenshots); done() prints the summary and returns
 * the exit status. */
export function checker(onFailure) {
  let passed = 0;
  let failed = 0;
  let blocked = null;
  async function check(name, fn, { critical = false } = {}) {
    if (blocked) {
      failed++;
      console.log(`FAIL ${name}: not run, "${blocked}" failed`);
      return;
    }
    const t0 = Date.now();
    try {
      await fn();
      passed++;
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${(e && e.message) || e}`);
      await onFailure(name).catch(() => {});
      if (critical) blocked = name;
    }
  }
  function done() {
    console.log(`${passed} passed, ${failed} failed`);
    return failed ? 1 : 0;
  }
  return { check, done };
}
