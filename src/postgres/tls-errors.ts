// TLS failures as the operator reads them: one line naming the certificate
// problem and the sslmode that would connect, never Node's stack or the driver's
// wording alone.
import { readConnectionString } from './connection.js';

/** Node's codes for a certificate chain it cannot trust (OpenSSL's verify results). */
const untrustedChain = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'INVALID_CA',
  'CERT_CHAIN_TOO_LONG',
]);

// pg's own words when the server answers the SSLRequest with 'N', or with anything but 'S'.
const serverRefusesTls = 'The server does not support SSL connections';
const sslRequestFailed = 'There was an error establishing an SSL connection';

interface ErrorLike {
  code?: string;
  message?: string;
}

/** The server refused TLS, or the handshake failed: libpq's allow and prefer then try the other way. */
export function isTlsRefusal(error: unknown): boolean {
  const { code, message } = (error ?? {}) as ErrorLike;
  return message === serverRefusesTls || message === sslRequestFailed || /^ERR_(SSL|TLS)_/.test(code ?? '');
}

function sslModeOf(url: string): { mode: string; host: string } {
  try {
    const keywords = readConnectionString(url);
    return { mode: keywords.sslmode ?? 'prefer', host: keywords.host ?? '' };
  } catch {
    return { mode: 'prefer', host: '' };
  }
}

/** One line for a TLS failure, or undefined when the error is not about TLS. */
export function describeTlsError(error: unknown, url: string, where: string): { message: string; code: string } | undefined {
  const { code = '', message: text = '' } = (error ?? {}) as ErrorLike;
  const message = text.split('\n')[0] ?? '';
  const { mode, host } = sslModeOf(url);
  if (untrustedChain.has(code)) {
    return {
      code,
      message:
        `cannot verify the TLS certificate of ${where}: ${message} (sslmode=${mode}); ` +
        'name the certificate of the CA that signed it with sslrootcert=FILE, or use sslmode=require to encrypt without verifying',
    };
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return {
      code,
      message:
        `the TLS certificate of ${where} is not issued for ${host}: ${message} (sslmode=${mode}); ` +
        'connect by a name the certificate lists, or use sslmode=verify-ca to verify the chain without the host name',
    };
  }
  if (message === serverRefusesTls) {
    return {
      code: 'ENOTLS',
      message: `${where} does not accept TLS connections (sslmode=${mode}): turn ssl on in the server, or use sslmode=prefer to fall back to an unencrypted connection`,
    };
  }
  if (message === sslRequestFailed || /^ERR_(SSL|TLS)_/.test(code)) {
    return { code: code || 'ETLS', message: `the TLS handshake with ${where} failed: ${message} (sslmode=${mode})` };
  }
  return undefined;
}
