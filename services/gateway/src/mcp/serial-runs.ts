/**
 * `work`, run one at a time on request: a request while a run is under way makes exactly one
 * more run, started after it, however many came — so what the last run sees is the latest,
 * and a burst costs two runs. `work` answers false to stop early (requests made meanwhile are
 * dropped; the next one starts afresh); a thrown error goes to `failed` and stops it too.
 */
export function serialRuns(work: () => Promise<boolean>, failed: (error: Error) => void): () => void {
  let running = false;
  let again = false;
  return () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    void (async () => {
      try {
        do again = false;
        while ((await work()) && again);
      } catch (error) {
        failed(error instanceof Error ? error : new Error(String(error)));
      } finally {
        running = false;
      }
    })();
  };
}
