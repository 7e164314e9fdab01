import { MessagingMetrics } from '@context-gateway/messaging';
import {
  collectDefaultMetrics,
  Counter,
  type CounterConfiguration,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  Registry,
} from 'prom-client';

export type { Counter, Gauge, Histogram } from 'prom-client';

/** Seconds; most HTTP answers take milliseconds, a long page or export a few seconds. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds; a local keyring answers in microseconds, a remote KMS in tens of milliseconds. */
const KEY_STORE_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * The period of the event-loop lag sampler behind `nodejs_eventloop_lag_*` (prom-client's
 * default is 10 ms). Each sample is a timer that wakes the process: at 10 ms that alone cost
 * an idle service ~375 ms of CPU a minute, most of what it spent doing nothing (commit
 * f333f52); at 100 ms about a sixth of it. Every interval is recorded whole, so an idle loop
 * now reads ~0.1 s instead of ~0.01 s, and a 15 s scrape holds ~150 samples instead of
 * ~1,500: p99 is the 2nd-longest interval, so the lag alert reads p90 (deploy/monitoring/
 * alerts.yaml). A stall longer than 100 ms is still always seen, shorter ones in proportion
 * to their length.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/** What the readiness gauge asks; the runtime's ReadinessService. */
interface ReadinessSource {
  evaluate(): Promise<{ ready: boolean }>;
}

/** The shape of libs/crypto's KeyOperationObserver, restated so this lib needs no crypto dependency. */
export interface KeyStoreObserver {
  keyOperation(event: {
    provider: string;
    operation: 'wrap' | 'unwrap' | 'rewrap';
    seconds: number;
    ok: boolean;
  }): void;
}

export interface MetricsOptions {
  service: string;
  version: string;
  /** A sharded service's shard; becomes a label on every series. */
  shard?: number;
}

/**
 * The process's one Prometheus registry, made by the runtime and injectable (`Metrics`).
 * Every series carries `service` (and `shard` for a shard process); `instance` is added by
 * Prometheus. The runtime records HTTP, NATS request/reply, JetStream consumers, readiness,
 * process and key-store metrics; a service declares its own with counter/gauge/histogram,
 * in a `*.metrics.ts` file (deploy/monitoring.spec.ts reads those to check that every metric
 * an alert or the dashboard uses is defined).
 *
 * Labels must be bounded: route templates, catalog subjects, error codes, reasons — never
 * ids, users or connections (each distinct value is a series kept in memory forever).
 */
export class Metrics {
  readonly registry = new Registry();
  readonly messaging: MessagingMetrics;
  readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly httpDuration: Histogram<'route' | 'method'>;
  private readonly keyStoreDuration: Histogram<'provider' | 'operation' | 'outcome'>;
  private readiness: ReadinessSource | undefined;

  /** Key-store latency: pass as `observer` to libs/crypto's EnvelopeCipher. */
  readonly keyStore: KeyStoreObserver = {
    keyOperation: ({ provider, operation, seconds, ok }) =>
      this.keyStoreDuration.observe({ provider, operation, outcome: ok ? 'ok' : 'error' }, seconds),
  };

  constructor(options: MetricsOptions) {
    this.registry.setDefaultLabels({
      service: options.service,
      ...(options.shard === undefined ? {} : { shard: String(options.shard) }),
    });
    // CPU, memory, event-loop lag, GC, handles: `process_*` and `nodejs_*`.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    this.messaging = new MessagingMetrics(this.registry);
    this.gauge({
      name: 'service_info',
      help: 'Always 1; the running version as a label (joins and "which version is deployed").',
      labelNames: ['version'],
    }).set({ version: options.version }, 1);
    this.httpRequests = this.counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by route template (never the raw URL), method and status.',
      labelNames: ['route', 'method', 'status'],
    });
    this.httpDuration = this.histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from receiving an HTTP request to the end of its response, by route template.',
      labelNames: ['route', 'method'],
      buckets: HTTP_BUCKETS,
    });
    this.keyStoreDuration = this.histogram({
      name: 'keystore_operation_duration_seconds',
      help: 'Latency of key-provider calls (wrap, unwrap, rewrap of data keys), by provider and outcome.',
      labelNames: ['provider', 'operation', 'outcome'],
      buckets: KEY_STORE_BUCKETS,
    });
    const readiness = () => this.readiness;
    this.gauge({
      name: 'service_ready',
      help: 'Readiness as /readyz answers it at scrape time: 1 ready, 0 not (a dependency down, or shutting down).',
      // `this` is the gauge here (prom-client calls collect on it).
      async collect() {
        const source = readiness();
        this.set(source && (await source.evaluate()).ready ? 1 : 0);
      },
    });
  }

  /** The runtime's readiness checks, evaluated on every scrape into `service_ready`. */
  trackReadiness(readiness: ReadinessSource): void {
    this.readiness = readiness;
  }

  counter<L extends string = never>(config: Omit<CounterConfiguration<L>, 'registers'>): Counter<L> {
    return new Counter({ ...config, registers: [this.registry] });
  }

  gauge<L extends string = never>(config: Omit<GaugeConfiguration<L>, 'registers'>): Gauge<L> {
    return new Gauge({ ...config, registers: [this.registry] });
  }

  histogram<L extends string = never>(config: Omit<HistogramConfiguration<L>, 'registers'>): Histogram<L> {
    return new Histogram({ ...config, registers: [this.registry] });
  }

  /** The exposition text (Prometheus format) and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
