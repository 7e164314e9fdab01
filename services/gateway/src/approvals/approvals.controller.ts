import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { LOGGER } from '@context-gateway/service-kit';
import { Body, Controller, Inject, Param, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';

import { AccountsService } from '../accounts/accounts.service.js';
import { assertCsrfToken, issueCsrfToken } from '../auth/csrf.js';
import { errorPage } from '../connect/connect-pages.js';
import { htmlPageHeaders } from '../http/html.js';
import { Route } from '../http/route.decorator.js';
import { displayArguments, escapeInvisible } from './approval-display.js';
import { approvalDonePage, approvalPage, type ApprovalPageView } from './approval-pages.js';
import type { ApprovalRow } from './approvals.repository.js';
import { ApprovalsService } from './approvals.service.js';

/** The one form route of approvals (the form parser answers on it: connect.module.ts). */
export const APPROVAL_FORM_ROUTES = ['POST /v1/approvals/:approvalId'];

const params = z.object({ approvalId: z.uuid() }).strict();
const approvalForm = z
  .object({
    csrf: z.string().min(1).max(128),
    /** allow = approve (the consent script's field names), deny = decline. */
    decision: z.enum(['allow', 'deny']),
    /** Approve: the person's passkey assertion over the page's challenge (the page's script sets it). */
    assertion: z.string().max(16_384).optional(),
  })
  .strict();

/** Page errors a person can meet, with the words they read. */
const PAGE_ERRORS: Partial<Record<string, { title: string; message: string }>> = {
  approval_not_found: { title: 'This link cannot be used', message: 'This approval request is unknown.' },
  approval_expired: {
    title: 'This request has expired',
    message: 'Approval requests work for a few minutes. Ask the application to try the call again.',
  },
  approval_already_decided: {
    title: 'Already decided',
    message: 'This call was already approved or declined. Each request is decided once.',
  },
  csrf_invalid: { title: 'Please try again', message: 'The form expired or was not sent from this page.' },
};

/**
 * The person's side of approvals: the page of one held tool call and its form. Only the
 * signed-in person the agent acts for sees the call; Approve posts their passkey's assertion
 * over exactly this call's statement, Decline needs only their session.
 */
@Controller('v1/approvals')
export class ApprovalsController {
  constructor(
    private readonly approvals: ApprovalsService,
    private readonly accounts: AccountsService,
    private readonly rpcClient: RpcClient,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @Route({
    method: 'GET',
    path: ':approvalId',
    summary: 'The approval page of a held MCP tool call',
    description:
      "Opened by the person from the agent's elicitation link: the application, the tool and its annotations, the exact arguments, Approve / Decline.",
    tags: ['mcp'],
    auth: 'none',
    params,
    success: { status: 200, description: 'The approval page.', contentType: 'text/html' },
    errors: ['approval_not_found', 'approval_expired', 'approval_already_decided'],
  })
  async show(@Param() p: z.infer<typeof params>, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    try {
      return await this.render(reply, request, p.approvalId);
    } catch (error) {
      return this.page(reply, error);
    }
  }

  @Route({
    method: 'POST',
    path: ':approvalId',
    summary: 'The approval form: Approve or Decline',
    description:
      "Form post from the approval page (CSRF-protected). Approve needs the person's passkey assertion over the page's challenge " +
      '(the hash of exactly this call), verified against their passkeys; without a valid one the page is shown again.',
    tags: ['mcp'],
    auth: 'none',
    params,
    body: approvalForm,
    success: { status: 200, description: 'What happens next.', contentType: 'text/html' },
    errors: [
      'approval_not_found',
      'approval_expired',
      'approval_already_decided',
      'csrf_invalid',
      'passkey_signature_invalid',
    ],
  })
  async decide(
    @Param() p: z.infer<typeof params>,
    @Body() form: z.infer<typeof approvalForm>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    try {
      assertCsrfToken(request, form.csrf);
      const person = await this.accounts.optionalPerson(request.headers.cookie);
      if (!person) return this.redirect(reply, this.signInUrl(p.approvalId));
      let row: ApprovalRow;
      try {
        row = await this.approvals.decide(
          p.approvalId,
          person.userId,
          form.decision === 'allow' ? 'approve' : 'decline',
          form.assertion,
        );
      } catch (error) {
        if (error instanceof AppError && error.code === 'passkey_signature_invalid')
          return await this.render(
            reply,
            request,
            p.approvalId,
            'Your passkey did not sign this call, or its signature was not accepted. Choose Approve to sign again.',
          );
        throw error;
      }
      // The answer is in the audit trail already (ApprovalsService.decide).
      this.pageHeaders(reply);
      reply.status(200).send(approvalDonePage(row.status === 'approved', row.method, escapeInvisible(row.name)));
      return reply;
    } catch (error) {
      return this.page(reply, error);
    }
  }

  private async render(reply: FastifyReply, request: FastifyRequest, approvalId: string, error?: string) {
    const person = await this.accounts.optionalPerson(request.headers.cookie);
    const csrf = issueCsrfToken(request, reply);
    const base = {
      action: `/v1/approvals/${approvalId}`,
      csrf,
      signInUrl: this.signInUrl(approvalId),
    };
    if (!person) {
      this.pageHeaders(reply);
      reply.status(200).send(
        approvalPage({
          ...base,
          signedIn: false,
          applicationName: '',
          method: '',
          name: '',
          tool: {},
          arguments: '',
          expiresAt: new Date(0),
        }),
      );
      return reply;
    }
    const view = await this.approvals.view(approvalId, person.userId);
    const { application } = await this.rpcClient.request(rpc.identity.getApplication, {
      orgId: view.row.orgId,
      applicationId: view.row.applicationId,
    });
    this.pageHeaders(reply);
    reply.status(error ? 422 : 200).send(
      approvalPage({
        ...base,
        signedIn: true,
        applicationName: application?.name ?? 'An application',
        method: view.row.method,
        name: escapeInvisible(view.row.name),
        tool: JSON.parse(view.row.tool) as ApprovalPageView['tool'],
        arguments: displayArguments(view.row.arguments),
        expiresAt: view.row.expiresAt,
        challenge: view.challenge,
        credentialIds: view.credentialIds,
        ...(error ? { error } : {}),
      }),
    );
    return reply;
  }

  private signInUrl(approvalId: string): string {
    return `/v1/auth/signin?return_to=${encodeURIComponent(`/v1/approvals/${approvalId}`)}`;
  }

  private redirect(reply: FastifyReply, location: string) {
    reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').redirect(location, 303);
    return reply;
  }

  private page(reply: FastifyReply, error: unknown) {
    const appError = error instanceof AppError ? error : undefined;
    const known = appError ? PAGE_ERRORS[appError.code] : undefined;
    if (!known) this.logger.error({ err: appError ? { code: appError.code } : error }, 'approval page failed');
    this.pageHeaders(reply);
    reply
      .status(appError && known ? appError.status : appError?.status === 503 ? 503 : 502)
      .send(
        errorPage(
          known?.title ?? 'Something went wrong',
          known?.message ?? 'The approval could not be completed. Please try again later.',
          appError?.code,
        ),
      );
    return reply;
  }

  private pageHeaders(reply: FastifyReply) {
    // Scripts from this origin only (the passkey signature); never framed (clickjacking the
    // Approve button); the form posts to this origin only.
    htmlPageHeaders(
      reply,
      "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
  }
}
