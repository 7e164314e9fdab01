import { describe, expect, it } from '@jest/globals';

import { serialRuns } from './serial-runs.js';

// A burst of requests: one run at a time, exactly one more after the one under way.
describe('serialRuns', () => {
  function setup(answer: () => boolean = () => true) {
    const runs: { release: () => void }[] = [];
    let atOnce = 0;
    let mostAtOnce = 0;
    const failures: Error[] = [];
    const request = serialRuns(
      async () => {
        mostAtOnce = Math.max(mostAtOnce, ++atOnce);
        await new Promise<void>((resolve) => runs.push({ release: resolve }));
        atOnce--;
        return answer();
      },
      (error) => failures.push(error),
    );
    const settled = () => new Promise((resolve) => setImmediate(resolve));
    return { request, runs, settled, failures, mostAtOnce: () => mostAtOnce };
  }

  it('runs once more after the run under way, however many requests came during it', async () => {
    const { request, runs, settled, mostAtOnce } = setup();
    request();
    request();
    request();
    await settled();
    expect(runs).toHaveLength(1);
    runs[0]?.release();
    await settled();
    expect(runs).toHaveLength(2);
    runs[1]?.release();
    await settled();
    expect(runs).toHaveLength(2);
    expect(mostAtOnce()).toBe(1);
    // Idle again: the next request runs at once.
    request();
    await settled();
    expect(runs).toHaveLength(3);
  });

  it('drops the pending run when work answers false or throws, and starts afresh on the next request', async () => {
    let answer = false;
    const { request, runs, settled } = setup(() => answer);
    request();
    request();
    runs[0]?.release();
    await settled();
    expect(runs).toHaveLength(1);
    answer = true;
    request();
    await settled();
    expect(runs).toHaveLength(2);
    runs[1]?.release();
    await settled();

    const failures: Error[] = [];
    const failing = serialRuns(
      () => Promise.reject(new Error('policy unreachable')),
      (e) => failures.push(e),
    );
    failing();
    await settled();
    failing();
    await settled();
    expect(failures.map((e) => e.message)).toEqual(['policy unreachable', 'policy unreachable']);
  });
});
