/**
 * Gateway limits out of the way: a benchmark is one address driving many connections as fast
 * as it can, which the per-connection and per-address defaults are there to stop.
 */
export const UNLIMITED = {
  rateLimit: { perSecond: 1e9, burst: 1e9 },
  frameBudget: { perSecond: 1e9, burst: 1e9 },
  sessionRate: { perSecond: 1e9, burst: 1e9 },
  maxConnectionsPerAddress: 1e9,
  maxHandshakesPerAddress: 1e9,
} as const;
