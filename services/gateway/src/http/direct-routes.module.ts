import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';

import { DirectRoutesInstaller } from './direct-routes.js';

/** The hottest routes, served by Fastify without Nest's router (direct-routes.ts). */
@Module({ imports: [DiscoveryModule], providers: [DirectRoutesInstaller] })
export class DirectRoutesModule {}
