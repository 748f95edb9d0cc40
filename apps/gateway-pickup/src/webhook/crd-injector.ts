import { GATEWAY_CRD_NAME, CONVERSION_WEBHOOK } from '@raven/api-types';
import { RESOURCES, type KubeClient } from '@raven/controller-kit';
import { FIELD_MANAGER } from '../controllers/apply.ts';
import { z } from 'zod';

const crdConversionSchema = z.object({
  spec: z.object({
    conversion: z.object({
      webhook: z.object({ clientConfig: z.object({ caBundle: z.string().optional(), url: z.string().optional() }).loose().optional() }).loose().optional(),
    }).loose().optional(),
  }).loose(),
});

/**
 * Points the Gateway CRD's conversion webhook at us: the CA bundle always, and a URL instead of the
 * Service reference when the webhook runs outside the cluster network (the test harness). No write when nothing changed.
 */
export async function injectConversionConfig(kube: KubeClient, caPem: string, url?: string): Promise<boolean> {
  const crd = crdConversionSchema.parse(await kube.get(RESOURCES.crds, { name: GATEWAY_CRD_NAME }));
  const clientConfig = crd.spec.conversion?.webhook?.clientConfig;
  const caBundle = Buffer.from(caPem).toString('base64');
  if (clientConfig?.caBundle === caBundle && clientConfig.url === url) return false;
  const target = url
    ? { url, service: null }
    : { url: null, service: { namespace: CONVERSION_WEBHOOK.namespace, name: CONVERSION_WEBHOOK.serviceName, path: CONVERSION_WEBHOOK.path, port: CONVERSION_WEBHOOK.servicePort } };
  await kube.patch(RESOURCES.crds, { name: GATEWAY_CRD_NAME }, {
    spec: { conversion: { strategy: 'Webhook', webhook: { conversionReviewVersions: ['v1'], clientConfig: { caBundle, ...target } } } },
  }, 'merge', { fieldManager: FIELD_MANAGER });
  return true;
}
