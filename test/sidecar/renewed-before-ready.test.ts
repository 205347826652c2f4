// A certificate renewed while the sidecar still waits for its first config (a slow or absent control plane can
// hold it there past half-life) is the one its listeners start with, not the bootstrap one it replaced.

import test from 'ava';
import { once } from 'node:events';
import tls from 'node:tls';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { makeCsr, WEB } from '../helpers/ca.ts';
import { fullEvent, readyPorts, startFakeControlPlane, webSnapshot } from '../helpers/fake-control-plane.ts';
import { waitFor } from '../helpers/mesh.ts';

const serial = (hex: string) => hex.toUpperCase().replace(/^0+/, '');

test('the inbound presents the certificate renewed before the first config, as /certs says', async (t) => {
  const fake = await startFakeControlPlane(t, {
    // The first renewal goes through, later ones are refused: the certificate stays the renewed one.
    renew: (n) => n === 1,
    onStream: (s) => {
      s.open();
      // No config until the certificate has been renewed once.
      const send = () => (fake.renewals >= 1 ? s.res.write(fullEvent(100, webSnapshot(fake.ca))) : setTimeout(send, 50));
      send();
    },
  });
  const sc = fake.sidecar({ env: { WEFT_RENEW_EVERY: '1s' } });
  const ports = await waitFor('the sidecar to be ready', () => readyPorts(sc), 30_000);
  t.true(sc.logs().includes('"msg":"certificate renewed"'), 'renewed before ready');
  const certs = JSON.parse(await (await fetch(`http://127.0.0.1:${ports.admin}/certs`)).text()) as { serial: string };

  const keys = generateKeyPair();
  const client = fake.ca.ca.sign((await makeCsr({ keys })).pem, WEB);
  const s = tls.connect({ host: '127.0.0.1', port: ports.inbound, key: privateKeyToPem(keys.privateKey), cert: client.chainPem, ca: fake.ca.bundle.toPem(), ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined });
  t.teardown(() => s.destroy());
  await once(s, 'secureConnect');
  t.is(serial(s.getPeerCertificate().serialNumber), serial(certs.serial), 'the inbound serves with the certificate in force');
});
