import { describe, expect, it } from 'vitest';
import { NODE_NAME_EXTRA, gatewayV1beta1Schema, type Gateway, type NodeView } from '@raven/api-types';
import type { CsrFacts } from '@raven/node-certs';
import { decideCsr, type CsrPolicy, type CsrView } from '../src/controllers/csr-approver.ts';

const node = (name: string, gateway: string | undefined, internalIPs: string[]): NodeView => ({
  metadata: { name }, gateway, internalIPs, externalIPs: [], podCIDRs: [], ready: 'True', calico: false,
});
const gw = (name: string, exposeType: string | undefined, proxyNodes: string[], active: string[]): Gateway => gatewayV1beta1Schema.parse({
  apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name },
  spec: { exposeType, proxyConfig: { Replicas: 1 }, endpoints: proxyNodes.map((nodeName) => ({ nodeName, type: 'proxy', ...(nodeName === 'srv' ? { publicIP: '198.18.0.5' } : {}) })) },
  status: { activeEndpoints: active.map((nodeName) => ({ nodeName, type: 'proxy' })) },
});
const nodes = [node('srv', 'cloud', ['10.0.0.5', '10.0.0.9']), node('cli', 'edge', ['10.1.0.7']), node('alone', undefined, ['10.2.0.1']), node('member', 'edge', ['10.1.0.8']), node('twin', 'edge', ['10.0.0.9'])];
const gateways = [gw('cloud', 'PublicIP', ['srv'], ['srv']), gw('edge', undefined, ['cli'], ['cli'])];
const policy: CsrPolicy = {
  namespace: 'kube-system', serverServiceAccount: 'raven-proxy-server', clientServiceAccount: 'raven-proxy-client', requireNodeBinding: true,
  node: (n) => nodes.find((x) => x.metadata.name === n),
  nodesWithAddress: (ip) => nodes.filter((x) => x.internalIPs.includes(ip)),
  gateways: () => gateways,
};

const SERVER = 'system:serviceaccount:kube-system:raven-proxy-server';
const CLIENT = 'system:serviceaccount:kube-system:raven-proxy-client';
const csr = (username: string, signerName: string, over: Partial<CsrView['spec']> = {}, boundTo?: string): CsrView => ({
  metadata: { name: 'c' },
  spec: {
    request: '', signerName, username, usages: signerName === 'kubernetes.io/kubelet-serving' ? ['digital signature', 'server auth'] : ['digital signature', 'client auth'],
    ...(boundTo ? { extra: { [NODE_NAME_EXTRA]: [boundTo] } } : {}), ...over,
  },
});
const facts = (over: Partial<CsrFacts>): CsrFacts => ({
  commonName: '', organizations: [], otherSubject: [], dnsNames: [], ipAddresses: [], otherNames: [], otherExtensions: [], signatureValid: true, ...over,
});
const serving = (n: string, over: Partial<CsrFacts> = {}) => facts({ commonName: `system:node:${n}`, organizations: ['system:nodes'], dnsNames: [n], ...over });
const clientId = (n: string, over: Partial<CsrFacts> = {}) => facts({ commonName: `raven:proxy-client:${n}`, ...over });
const KS = 'kubernetes.io/kubelet-serving';
const KC = 'kubernetes.io/kube-apiserver-client';

describe('decideCsr', () => {
  it.each<[string, CsrView, CsrFacts | undefined, string]>([
    ['a kubelet\'s own serving CSR is not ours', csr('system:node:srv', KS), serving('srv'), 'ignore'],
    ['proxy-server with its node\'s SANs', csr(SERVER, KS, {}, 'srv'), serving('srv', { dnsNames: ['srv', 'x-raven-proxy-internal-svc.kube-system.svc'], ipAddresses: ['10.0.0.5', '198.18.0.5'] }), 'approve RavenProxyServer'],
    ['proxy-server claiming an address another node also has', csr(SERVER, KS, {}, 'srv'), serving('srv', { ipAddresses: ['10.0.0.9'] }), 'deny ForeignSANs'],
    ['proxy-server claiming another node\'s address', csr(SERVER, KS, {}, 'srv'), serving('srv', { ipAddresses: ['10.1.0.7'] }), 'deny ForeignSANs'],
    ['proxy-server on a node of a non-exposed Gateway', csr(SERVER, KS, {}, 'cli'), serving('cli'), 'deny NotAProxyNode'],
    ['proxy-server with the client signer', csr(SERVER, KC, {}, 'srv'), serving('srv'), 'deny WrongSigner'],
    ['proxy-server without SANs', csr(SERVER, KS, {}, 'srv'), serving('srv', { dnsNames: [] }), 'deny BadSANs'],
    ['proxy-server with a client usage', csr(SERVER, KS, { usages: ['server auth', 'client auth'] }, 'srv'), serving('srv'), 'deny BadUsages'],
    ['proxy-server without the node organization', csr(SERVER, KS, {}, 'srv'), serving('srv', { organizations: [] }), 'deny BadSubject'],
    ['an unparseable request', csr(SERVER, KS, {}, 'srv'), undefined, 'deny Malformed'],
    ['a request not signed by its key', csr(SERVER, KS, {}, 'srv'), serving('srv', { signatureValid: false }), 'deny BadSignature'],
    ['extra subject attributes', csr(SERVER, KS, {}, 'srv'), serving('srv', { otherSubject: ['OU=x'] }), 'deny BadSubject'],
    ['an email SAN', csr(SERVER, KS, {}, 'srv'), serving('srv', { otherNames: ['email:a@b'] }), 'deny BadSANs'],
    ['an extra extension', csr(SERVER, KS, {}, 'srv'), serving('srv', { otherExtensions: ['1.2.3'] }), 'deny BadExtensions'],
    ['a token bound to another node', csr(SERVER, KS, {}, 'cli'), serving('srv'), 'deny NodeMismatch'],
    ['a token bound to no Pod', csr(SERVER, KS), serving('srv'), 'deny UnboundRequester'],
    ['a node that does not exist', csr(SERVER, KS, {}, 'ghost'), serving('ghost'), 'deny UnknownNode'],
    ['proxy-client of the elected endpoint of its non-exposed Gateway', csr(CLIENT, KC, {}, 'cli'), clientId('cli'), 'approve RavenProxyClient'],
    ['proxy-client of a node in no Gateway', csr(CLIENT, KC, {}, 'alone'), clientId('alone'), 'approve RavenProxyClient'],
    ['proxy-client of a plain member', csr(CLIENT, KC, {}, 'member'), clientId('member'), 'deny NotAProxyNode'],
    ['proxy-client with SANs', csr(CLIENT, KC, {}, 'cli'), clientId('cli', { dnsNames: ['cli'] }), 'deny BadSANs'],
    ['proxy-client with an organization', csr(CLIENT, KC, {}, 'cli'), clientId('cli', { organizations: ['system:masters'] }), 'deny BadSubject'],
    ['proxy-client with a serving CN', csr(CLIENT, KC, {}, 'cli'), serving('cli', { dnsNames: [], organizations: [] }), 'deny BadSubject'],
    ['a proxy-client identity asked for by someone else', csr('system:serviceaccount:default:x', KC), clientId('cli'), 'deny WrongRequester'],
  ])('%s', (_what, request, parsed, want) => {
    const v = decideCsr(request, parsed, policy);
    expect(v.verdict === 'ignore' ? 'ignore' : `${v.verdict} ${v.reason}`).toBe(want);
  });

  it('approves without a bound token only when node binding is off', () => {
    expect(decideCsr(csr(SERVER, KS), serving('srv'), { ...policy, requireNodeBinding: false }).verdict).toBe('approve');
  });
});
