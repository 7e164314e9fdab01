/**
 * `node dist/bootstrap.cli.js`: the JetStream bootstrap step (runNatsBootstrap) for
 * containers, where scripts/ is not in the image: compose's `nats-bootstrap` service and
 * deploy/'s `nats-bootstrap` Job run it from a service image before the services start.
 */
import { runNatsBootstrap } from './nats-bootstrap.js';

runNatsBootstrap(process.env).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`nats bootstrap failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
