import type { Logger } from '@raven/controller-kit';
import { parseHostPort, type Dialer } from '@raven/tunnel-protocol';
import type { Counter } from 'prom-client';
import { DialRefused, resolveDial, type ClientPlan, type DialGuard } from './plan.ts';

/**
 * The dials servers ask for, under the current plan's policy: only while serving, only to a member of the served
 * domain on a reachable port (resolveDial). A refusal is counted, logged and returned to the server as a policy
 * error; any other failure as it is.
 */
export function policyDialer(opts: { plan: () => ClientPlan | undefined; guard: DialGuard; connect: Dialer; log: Logger; dials: Counter<'result'> }): Dialer {
  const { guard, connect, log, dials } = opts;
  return async (address, context) => {
    try {
      const { host, port } = parseHostPort(address);
      const plan = opts.plan();
      if (!plan?.active) throw new DialRefused('this proxy-client is not serving');
      const { ip } = resolveDial(plan, host, port, guard);
      const socket = await connect(`${ip.includes(':') ? `[${ip}]` : ip}:${port}`, context);
      dials.inc({ result: 'ok' });
      return socket;
    } catch (err) {
      const refused = err instanceof DialRefused;
      dials.inc({ result: refused ? 'refused' : 'failed' });
      if (!refused) throw err;
      log.warn({ address, err: err.message }, 'dial refused by policy');
      throw new Error(`dial ${address}: not allowed by raven proxy-client policy: ${err.message}`, { cause: err });
    }
  };
}
