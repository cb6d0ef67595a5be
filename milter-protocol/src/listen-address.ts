import { isIP } from 'node:net';

/** Where a milter listens, from Postfix (`inet:host:port`, `unix:/path`) or Sendmail (`inet:port@host`) syntax. */
export type ListenAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

export class ListenAddressError extends Error {
  constructor(spec: string, why: string) {
    super(`listen address ${JSON.stringify(spec)}: ${why} (expected inet:HOST:PORT, inet6:[HOST]:PORT, inet:PORT@HOST or unix:/PATH)`);
    this.name = 'ListenAddressError';
  }
}

function parsePort(spec: string, text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw new ListenAddressError(spec, `port '${text}' is not a number from 0 to 65535`);
  return Number(text);
}

export function parseListenAddress(spec: string): ListenAddress {
  const colon = spec.indexOf(':');
  if (colon < 0) throw new ListenAddressError(spec, 'no transport prefix');
  const transport = spec.slice(0, colon).toLowerCase();
  const rest = spec.slice(colon + 1);
  if (transport === 'unix' || transport === 'local') {
    if (!rest.startsWith('/')) throw new ListenAddressError(spec, 'a UNIX socket path must be absolute');
    return { kind: 'unix', path: rest };
  }
  if (transport !== 'inet' && transport !== 'inet6') throw new ListenAddressError(spec, `unknown transport '${transport}'`);

  let host: string;
  let portText: string;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    // Sendmail: inet:PORT@HOST
    portText = rest.slice(0, at);
    host = rest.slice(at + 1);
  } else if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0 || rest[close + 1] !== ':') throw new ListenAddressError(spec, "a bracketed host must be followed by ':PORT'");
    host = rest.slice(1, close);
    portText = rest.slice(close + 2);
  } else {
    const last = rest.lastIndexOf(':');
    if (last < 0) throw new ListenAddressError(spec, 'no port');
    host = rest.slice(0, last);
    portText = rest.slice(last + 1);
    if (host.includes(':')) throw new ListenAddressError(spec, 'an IPv6 host must be written in brackets, e.g. inet6:[::1]:PORT');
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '') throw new ListenAddressError(spec, 'empty host');
  if (transport === 'inet6' && isIP(host) === 4) throw new ListenAddressError(spec, 'inet6 with an IPv4 address');
  return { kind: 'tcp', host, port: parsePort(spec, portText) };
}

export function formatListenAddress(address: ListenAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  return isIP(address.host) === 6 ? `inet6:[${address.host}]:${address.port}` : `inet:${address.host}:${address.port}`;
}
