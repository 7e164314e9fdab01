import { AppError } from '@context-gateway/errors';
import { Injectable } from '@nestjs/common';

import { isUniqueViolation } from '../database/prisma-errors.js';
import type { Organization } from '../generated/prisma/client.js';
import { OrganizationsRepository } from './organizations.repository.js';

const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** `Acme Corp.` → `acme-corp`. */
function slugify(name: string): string {
  return name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
}

@Injectable()
export class OrganizationsService {
  constructor(private readonly organizations: OrganizationsRepository) {}

  async create(input: { name: string; slug: string }): Promise<Organization> {
    const name = input.name.trim();
    const slug = input.slug || slugify(name);
    if (!SLUG.test(slug)) {
      throw new AppError('validation_failed', 'The organization slug is not valid', [
        {
          path: input.slug ? 'slug' : 'name',
          message: 'slug must be lower-case letters, digits and inner hyphens (1-63)',
        },
      ]);
    }
    try {
      return await this.organizations.create({ name, slug });
    } catch (error) {
      if (isUniqueViolation(error))
        throw new AppError('conflict', `An organization with slug "${slug}" already exists`);
      throw error;
    }
  }

  async get(id: string): Promise<Organization> {
    const org = await this.organizations.findById(id);
    if (!org) throw new AppError('not_found', 'No such organization');
    return org;
  }

  list(): Promise<Organization[]> {
    return this.organizations.list();
  }
}
