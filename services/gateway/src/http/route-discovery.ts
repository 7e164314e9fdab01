import type { Type } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants.js';
import { MetadataScanner } from '@nestjs/core';

/** One method of a controller instance, own or inherited: where OpenAPI and the direct routes look for routes. */
export interface ControllerMethod {
  instance: object;
  metatype: Type<unknown>;
  /** The controller's @Controller path without its leading or trailing slash ('' for none). */
  prefix: string;
  name: string;
  handler: (...args: never[]) => unknown;
}

const scanner = new MetadataScanner();

/**
 * Every method of `controllers` (DiscoveryService's wrappers, once Nest made the instances),
 * listed as Nest's router lists them (MetadataScanner: the prototype chain, getters left
 * out), so OpenAPI, the direct routes and Nest's own routes see the same methods.
 */
export function controllerMethods(
  controllers: readonly { instance: unknown; metatype: unknown }[],
): ControllerMethod[] {
  const methods: ControllerMethod[] = [];
  for (const wrapper of controllers) {
    const instance = wrapper.instance as Record<string, unknown> | undefined;
    const metatype = wrapper.metatype as Type<unknown> | undefined;
    if (!instance || !metatype) continue;
    const path = (Reflect.getMetadata(PATH_METADATA, metatype) as string | undefined) ?? '';
    const prefix = path.replace(/^\/|\/$/g, '');
    for (const name of scanner.getAllMethodNames(Reflect.getPrototypeOf(instance))) {
      const handler = instance[name];
      if (typeof handler === 'function')
        methods.push({ instance, metatype, prefix, name, handler: handler as ControllerMethod['handler'] });
    }
  }
  return methods;
}
