/**
 * What happened on the way to the broker, counted: a gateway that cannot reach its broker for a week must show
 * on /metrics why (a certificate, a login, the network), not only that it is disconnected.
 */

/** Why a connection attempt failed, in the few kinds a user acts on differently. */
export type ConnectFailureReason = 'tls' | 'auth' | 'network' | 'other';

export const CONNECT_FAILURE_REASONS: readonly ConnectFailureReason[] = ['tls', 'auth', 'network', 'other'];

/** Operations the broker can refuse on an established connection (SUBACK or PUBACK reason code ≥ 0x80). */
export type RefusedOperation = 'subscribe' | 'publish';

export interface LastConnectFailure {
  reason: ConnectFailureReason;
  /** The error text (never the client options: they hold the password). */
  message: string;
  at: number;
}

export class BrokerStats {
  /** Connection attempts started: the first one and every reconnect. */
  attempts = 0;
  /** Attempts that ended in an accepted CONNACK. */
  connects = 0;
  /** Attempts that ended without one, by reason. */
  readonly failures: Record<ConnectFailureReason, number> = { tls: 0, auth: 0, network: 0, other: 0 };
  /** Established connections that dropped (not counting our own disconnect at shutdown). */
  connectionsLost = 0;
  /** MQTT 5 DISCONNECTs "session taken over" (0x8E): another client connected with our client id. */
  sessionTakeovers = 0;
  /** Topic filters and messages the broker refused on an established connection (ACLs). */
  readonly refusals: Record<RefusedOperation, number> = { subscribe: 0, publish: 0 };
  lastFailure: LastConnectFailure | null = null;

  get failuresTotal(): number {
    return CONNECT_FAILURE_REASONS.reduce((sum, reason) => sum + this.failures[reason], 0);
  }
}

// MQTT reason codes of a CONNACK that refuses the client itself: 3.1.1 return codes 4 and 5, MQTT 5 0x86 (bad user
// name or password), 0x87 (not authorized), 0x8A (banned), 0x8C (bad authentication method).
const AUTH_REASON_CODES = new Set([4, 5, 0x86, 0x87, 0x8a, 0x8c]);

// Socket errors of a broker that is down, unreachable or slow; not something a config change fixes.
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

// OpenSSL verification results (CERT_HAS_EXPIRED, DEPTH_ZERO_SELF_SIGNED_CERT, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...),
// Node's own TLS errors (ERR_TLS_CERT_ALTNAME_INVALID) and TLS alerts from the broker (ERR_SSL_...).
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_)|CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|HOSTNAME_MISMATCH|^EPROTO$/;

/**
 * The reason of a failed attempt from the error mqtt.js emitted during it (undefined: the socket closed without
 * one, e.g. a broker that accepts TCP and hangs up).
 */
export function classifyConnectFailure(error: Error | undefined): ConnectFailureReason {
  if (!error) return 'network';
  const code = (error as NodeJS.ErrnoException & { code?: unknown }).code;
  if (typeof code === 'number') return AUTH_REASON_CODES.has(code) ? 'auth' : 'other';
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code)) return 'network';
    if (TLS_CODE.test(code)) return 'tls';
  }
  if (/connack timeout/i.test(error.message)) return 'network';
  if (/certificate|\bTLS\b|\bSSL\b/i.test(error.message)) return 'tls';
  return 'other';
}

/** What the user can do about each kind of failure; the log line says it next to the error. */
export const FAILURE_HINTS: Record<ConnectFailureReason, string> = {
  tls: 'the broker certificate was not accepted: check that mqtt.caFile is the CA that signed it, that it has not expired, and that its name matches the host in mqtt.url',
  auth: 'the broker refused the login: check mqtt.username and the password (FORECASTD_MQTT_PASSWORD or mqtt.passwordFile), and that the broker allows this client',
  network: 'the broker could not be reached: is it running, and does mqtt.url point at it?',
  other: 'the broker connection failed; the error says why',
};
