import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { INSPECTOR_PAGE } from './page.ts';

/** The page's one inline script, allowed by its hash: nothing else may run on the page. */
const scriptHash = createHash('sha256')
  .update(/<script>([\s\S]*?)<\/script>/.exec(INSPECTOR_PAGE)?.[1] ?? '')
  .digest('base64');

/**
 * The inspector page's Content-Security-Policy: its own script only (by hash), inline styles
 * (the diagrams carry them), requests to its own origin only, and no framing (clickjacking).
 */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${scriptHash}'`,
  "style-src 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Headers every HTTP answer of the gateway carries: no content sniffing, no framing, no
 * referrer, and a CSP that allows nothing (the inspector page replaces it with {@link PAGE_CSP}).
 *
 * @example
 * securityHeaders(res); res.writeHead(200, { 'content-type': 'application/json' }).end(body);
 */
export function securityHeaders(res: ServerResponse): void {
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('referrer-policy', 'no-referrer');
  res.setHeader('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
}
