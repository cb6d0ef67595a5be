// What the 7-Zip worker is asked and answers, and how 7-Zip's `l -slt` output becomes that answer.

/** Where the worker puts the archive in 7-Zip's in-memory file system (named in 7-Zip's messages). */
export const ARCHIVE = '/in/archive';

export interface SevenZipRequest {
  readonly id: number;
  /** In an ArrayBuffer of its own, moved to the worker. */
  readonly data: Uint8Array<ArrayBuffer>;
  readonly maxMembers: number;
}

export interface SevenZipListing {
  /** Member paths as 7-Zip prints them, at most maxMembers + 1 (one more says there were more). */
  readonly names: string[];
  /** A member is password-protected. */
  readonly encrypted: boolean;
  /** Sum of the members' sizes. */
  readonly expandedBytes: number;
  /** 7-Zip read the whole archive without an error. */
  readonly complete: boolean;
  /** Why it is not complete, for the log. */
  readonly error?: string;
}

/**
 * The `-slt` listing: `Key = value` lines, a blank line between members. 7-Zip prints control characters in
 * names as `_` (as Windows extraction does), so a name cannot forge a line of its own.
 */
export function parseListing(lines: readonly string[], exitCode: number, maxMembers: number, archivePath = ARCHIVE): SevenZipListing {
  const names: string[] = [];
  let encrypted = false;
  let expandedBytes = 0;
  const errors: string[] = [];
  for (const line of lines) {
    if (line.startsWith('Path = ')) {
      // One past the limit tells the caller there were more.
      if (names.length <= maxMembers) names.push(line.slice('Path = '.length));
    } else if (line === 'Encrypted = +') encrypted = true;
    else if (line.startsWith('Size = ')) expandedBytes += Number(line.slice('Size = '.length)) || 0;
    else if (line.startsWith('ERROR: ')) errors.push(line.replace(archivePath, 'archive'));
  }
  // Exit code 1 is a warning (e.g. data after the end of the archive): every member was still listed.
  const complete = exitCode <= 1 && errors.length === 0;
  return { names, encrypted, expandedBytes, complete, ...(complete ? {} : { error: errors[0] ?? `7-Zip exit code ${exitCode}` }) };
}
