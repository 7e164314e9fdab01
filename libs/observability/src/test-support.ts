import type { DestinationStream } from 'pino';

/** An in-memory pino destination: the raw text written plus its parsed JSON lines. */
export class MemoryDestination implements DestinationStream {
  raw = '';

  write(chunk: string): void {
    this.raw += chunk;
  }

  lines(): Array<Record<string, unknown>> {
    return this.raw
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  last(): Record<string, unknown> {
    const all = this.lines();
    const line = all.at(-1);
    if (!line) throw new Error('nothing was logged');
    return line;
  }
}
