import { isIP } from 'node:net';
import { CONVERSION_WEBHOOK } from '@raven/api-types';
import type { Check, KubeClient, Logger } from '@raven/controller-kit';
import type { Registry } from 'prom-client';
import { injectConversionConfig } from './crd-injector.ts';
import { ensureServingCertificate, type ServingCertificate } from './serving-cert.ts';
import { WebhookServer } from './server.ts';

export interface WebhookOptions {
  kube: KubeClient;
  log: Logger;
  registry: Registry;
  namespace: string;
  secretName: string;
  port: number;
  bind: string;
  url?: string;
  extraHosts: string[];
  recheckMs: number;
}

/** Serves Gateway conversions, keeps the serving certificate fresh, and keeps the CRD pointing at us. */
export async function startWebhook(opts: WebhookOptions): Promise<{ ready: Check; stop: () => Promise<void> }> {
  const svc = `${CONVERSION_WEBHOOK.serviceName}.${opts.namespace}`;
  const urlHost = opts.url ? new URL(opts.url).hostname.replace(/^\[|\]$/g, '') : undefined;
  const hosts = [...new Set([...opts.extraHosts, ...(urlHost ? [urlHost] : [])])];
  const names = {
    dnsNames: [CONVERSION_WEBHOOK.serviceName, svc, `${svc}.svc`, `${svc}.svc.cluster.local`, ...hosts.filter((h) => !isIP(h))],
    ipAddresses: hosts.filter((h) => isIP(h)),
  };
  const settle = () => ensureServingCertificate(opts.kube, opts.log, { namespace: opts.namespace, secretName: opts.secretName, ...names });
  let cert: ServingCertificate = await settle();
  const server = new WebhookServer(cert, opts.log, opts.registry);
  const port = await server.listen(opts.port, opts.bind);
  let injected = await injectConversionConfig(opts.kube, cert.caPem, opts.url).then(() => true);
  opts.log.info({ port, url: opts.url ?? `service ${svc}` }, 'conversion webhook serving');

  const timer = setInterval(() => {
    void (async () => {
      const next = await settle();
      if (next.certPem !== cert.certPem) {
        server.updateCertificate(next);
        opts.log.info('serving certificate reloaded');
      }
      cert = next;
      injected = (await injectConversionConfig(opts.kube, cert.caPem, opts.url)) || injected;
    })().catch((err: unknown) => opts.log.error({ err }, 'certificate check failed'));
  }, opts.recheckMs);
  timer.unref();
  return {
    ready: () => ({ ok: injected, detail: injected ? undefined : 'CA bundle not injected yet' }),
    stop: async () => {
      clearInterval(timer);
      await server.close();
    },
  };
}
