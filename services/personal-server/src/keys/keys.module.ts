import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import type { Env } from '../env.js';
import { RecordKeys } from './record-keys.service.js';

class RecordKeysLifecycle implements OnApplicationShutdown {
  constructor(@Inject(RecordKeys) private readonly keys: RecordKeys) {}
  onApplicationShutdown(): void {
    this.keys.close(); // zero every KEK and data key held in memory
  }
}

/** Data keys of connections (envelope encryption, key files outside the database). */
@Module({
  providers: [{ provide: RecordKeys, inject: [SERVICE_ENV], useFactory: (env: Env) => RecordKeys.open(env) }, RecordKeysLifecycle],
  exports: [RecordKeys],
})
export class KeysModule {}
