/** What `baton help` prints, and what a usage error prints before exiting 2. */
export const USAGE = `Usage: baton-runtime <command> [options]
       (installed: npx baton-runtime <command>; from a checkout: npm start / npm run chat -- [options])

Commands:
  serve   run the AEP v1 gateway with the demo agent (the default command)
            --port N            (PORT, default 8080)
            --host HOST         (default 127.0.0.1; an address other than loopback needs --token
                                 or --insecure)
            --insecure          (serve a non-loopback --host without authentication: anyone who
                                 reaches the port may use every session)
            --token SECRET      (BATON_TOKEN; development: whoever sends it in init.auth.token, or
                                 as Authorization: Bearer, is the admin principal; must not be empty)
            --jwt-secret SECRET (BATON_JWT_SECRET; clients send a JWT signed HS256 with it, at least
                                 32 characters; its sub is the principal, its scope the scopes)
            --jwt-public-key FILE (a PEM public key or certificate: JWTs signed RS256/ES256/...)
            --agent A           (echo | openai; default echo, the demo agent)
            --model NAME        (BATON_MODEL; the model for --agent openai; OPENAI_BASE_URL and
                                 OPENAI_API_KEY choose the endpoint and key; needs: npm install openai)
            --demo-delay-ms N   (default 20: the demo agent's pause before each word)
            --debounce-ms N     (default 300)
            --max-wait-ms N     (default 2000)
            --busy-policy P     (collect | followup | interrupt | reject | steer; default collect)
            --drain-ms N        (default 5000: how long turns may finish on SIGTERM)
            --max-connections N (default 10000: sockets past it get HTTP 503 before the
                                 WebSocket handshake)
            --max-connections-per-address N (default 256: per remote address)
            --max-handshakes-per-address N  (default 32: sockets of one address still in their
                                 handshake)
            --handshake-timeout-ms N (default 5000, at most 30000: from accept to the init frame)
            --sessions-per-second N  (default 10, bursts of twice as many: new sessions per
                                 principal, or remote address without authentication)
            --max-sessions-per-principal N (default 1000: stored sessions one principal holds)
            --store S           (BATON_STORE; memory | sqlite:PATH | postgres://URL; default
                                 sqlite:./.baton/baton.db; sqlite needs: npm install better-sqlite3;
                                 postgres (a cluster node) needs: npm install postgres;
                                 postgres://…/db?schema=NAME puts the cluster in schema NAME,
                                 default baton)
            --node-id ID        (BATON_NODE_ID; this node's name in a postgres cluster; default
                                 <hostname>-<pid>)
            --lease-ttl-ms N    (postgres only; default 10000, at least 100: a node that has not
                                 renewed its lease for this long is dead to the others; renewed
                                 every third of it, at most every 3 s)
            --cluster-sweep-ms N (postgres only; default 2000, at least 10: how often a node
                                 claims sessions whose node died and looks for missed hints)
            --idle-timeout-ms N (default 600000: idle sessions are passivated to the store)
            --max-live-sessions N (default 50000: past it the least recently active idle sessions
                                 are passivated at once)
            --approval-timeout-ms N (default 300000: how long a tool call waits for the user's
                                 permission_response before it is denied, code approval_timeout)
            --log-level L       (BATON_LOG_LEVEL; fatal|error|warn|info|debug|trace|silent; default warn)
            --inspect           (off by default: report every session actor to the Stately inspector;
                                 needs a browser, the network and: npm install @statelyai/inspect)
  visualize  write visualizations/<machine>.{mmd,svg,json} for every machine
            --check             (write nothing; exit 1 if a committed file is stale)
            --out DIR           (default visualizations)
  chat    an interactive terminal client; a tool call that needs approval asks
          "allow <id>? [y/N]": y allows, anything else denies ("n too risky" gives a reason),
          a /command stays a command; at end of input what is asked is denied
            --url URL           (default ws://127.0.0.1:8080/ws)
            --session ID        (attach to a session; default: a new one)
            --onboarding        (start an onboarding session)
            --token SECRET      (BATON_TOKEN)
  help    this text (also --help, -h)
  version the package version (also --version, -v)

Exit status: 0 done, 1 a runtime failure (one line on stderr says what failed and what to do),
2 a usage error (this text).
`;

/** The command line itself is wrong: exit 2 with the usage. */
export class UsageError extends Error {
  override name = 'UsageError';
}
