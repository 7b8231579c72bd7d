/**
 * `baton-runtime/gateway`: the AEP v1 WebSocket gateway with health, metrics and the live
 * inspector, around a runtime you made.
 *
 * @example
 * import { createRuntime, demoAgent } from 'baton-runtime';
 * import { createGateway } from 'baton-runtime/gateway';
 * const gateway = createGateway({ runtime: createRuntime({ agent: demoAgent() }), port: 8080 });
 * const { url } = await gateway.listen();
 */
export { createGateway } from './gateway.ts';
export type { Gateway } from './gateway.ts';
export { gatewayDefaults } from './options.ts';
export type { GatewayOptions } from './options.ts';
export { ADMIN_SCOPE, METRICS_SCOPE, ownerOrAdmin, sessionKey, ownerOf } from './principal.ts';
export type { Principal, SessionAction, AuthorizeRequest, Authorize } from './principal.ts';
export { jwtAuthenticator } from './authenticate.ts';
export type { Authenticate, JwtOptions } from './authenticate.ts';
