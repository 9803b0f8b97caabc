/**
 * Certificates made for a test with the openssl command: a CA, a server certificate it signs
 * (for 127.0.0.1 and localhost), a client certificate it signs (mutual TLS), and a second,
 * unrelated CA (the "wrong CA" cases). EC P-256 keys: fast to make. Removed by cleanup().
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCerts {
  dir: string;
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed none of the above. */
  otherCaFile: string;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

function makeCa(dir: string, name: string): { cert: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`], dir);
  return { cert, key };
}

function makeSigned(dir: string, name: string, ca: { cert: string; key: string }, ext: string): { cert: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const extFile = path.join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', extFile], dir);
  return { cert, key };
}

export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-tls-'));
  const ca = makeCa(dir, 'ferry-test-ca');
  const other = makeCa(dir, 'unrelated-ca');
  const server = makeSigned(dir, 'server', ca, 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:redis.test\nextendedKeyUsage=serverAuth\n');
  const client = makeSigned(dir, 'client', ca, 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    caFile: ca.cert,
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
    otherCaFile: other.cert,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
