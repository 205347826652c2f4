// Compiles a Service document: port, protocol, identity (from its service account) and subsets.

import { WeftError } from '../../errors.ts';
import { workloadId } from '../../ca/spiffe-id.ts';
import { labelKeyProblem, labelValueProblem, SYSTEM_NAMESPACE } from './names.ts';
import type { Reporter } from './reporter.ts';
import type { ServiceDocument } from './schema.ts';
import type { ServiceConfig, Subset } from './types.ts';

/** `trustDomain` is the Mesh's; null when the Mesh is missing or invalid (the config is rejected anyway). */
export function compileService(doc: ServiceDocument, trustDomain: string | null, report: Reporter): ServiceConfig {
  const { metadata, spec } = doc;
  const namespace = metadata.namespace ?? 'default';
  const serviceAccount = spec.serviceAccount ?? metadata.name;
  if (namespace === SYSTEM_NAMESPACE) {
    report.error(['metadata', 'namespace'], `${SYSTEM_NAMESPACE} is the mesh's own namespace (the control plane's and operators' identities); put the Service in another namespace`);
  }

  let identity = '';
  if (trustDomain !== null) {
    try {
      identity = workloadId(trustDomain, namespace, serviceAccount).uri;
    } catch (err) {
      if (!(err instanceof WeftError)) throw err;
      report.error(spec.serviceAccount === undefined ? ['metadata', 'name'] : ['spec', 'serviceAccount'], `gives no valid identity: ${err.message}`);
    }
  }

  const subsets: Subset[] = [];
  const firstAt = new Map<string, number>();
  for (const [i, subset] of (spec.subsets ?? []).entries()) {
    const earlier = firstAt.get(subset.name);
    if (earlier !== undefined) report.error(['spec', 'subsets', i, 'name'], `duplicate subset ${JSON.stringify(subset.name)} (also spec.subsets[${earlier}]); subset names must be unique`);
    else firstAt.set(subset.name, i);
    for (const [key, value] of Object.entries(subset.labels)) {
      const keyProblem = labelKeyProblem(key);
      if (keyProblem) report.error(['spec', 'subsets', i, 'labels', key], keyProblem, 'key');
      const valueProblem = labelValueProblem(value);
      if (valueProblem) report.error(['spec', 'subsets', i, 'labels', key], valueProblem);
    }
    subsets.push({ name: subset.name, labels: { ...subset.labels } });
  }

  return { name: metadata.name, namespace, port: spec.port, protocol: spec.protocol ?? 'http', serviceAccount, identity, subsets };
}
