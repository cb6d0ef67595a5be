// clamd answers VERSION with `ClamAV <engine>/<daily db version>/<db build time>`, e.g.
// `ClamAV 1.0.7/27400/Tue Sep 24 08:37:31 2024`, or just `ClamAV <engine>` when no database is loaded.

export interface ClamdVersion {
  /** Engine version, e.g. `1.0.7`. */
  readonly engine: string;
  /** Version of the daily signature database; absent when clamd did not report one. */
  readonly signatureVersion?: number;
  /** Build time of that database; absent when clamd did not report one or it did not parse. */
  readonly signatureTime?: Date;
}

const VERSION_REPLY = /^ClamAV\s+([^/\s]+)(?:\/(\d+)(?:\/(.+))?)?$/;

/** Parses clamd's VERSION reply; undefined when the text is not one (so the caller can log it as it came). */
export function parseClamdVersion(reply: string): ClamdVersion | undefined {
  const m = VERSION_REPLY.exec(reply.replace(/\0/g, '').trim());
  if (m === null) return undefined;
  const engine = m[1] as string;
  const version = m[2] === undefined ? undefined : Number(m[2]);
  // clamd prints the build time with ctime(3) in its own local time zone; Date.parse reads it as local time,
  // which is right when clamd runs on this host (the common case) and off by the zone difference otherwise.
  const millis = m[3] === undefined ? NaN : Date.parse(m[3].trim());
  return {
    engine,
    ...(version !== undefined && Number.isSafeInteger(version) ? { signatureVersion: version } : {}),
    ...(Number.isFinite(millis) ? { signatureTime: new Date(millis) } : {}),
  };
}
