import { AddressFamily, CommandCode } from './constants.js';
import { MilterProtocolError } from './errors.js';
import type { ConnectCommand, Frame, MacroPair, MilterCommand } from './messages.js';
import { PayloadReader } from './payload-reader.js';

/** Decodes one packet from the MTA. Throws MilterProtocolError ('malformed-command' / 'unknown-command'). */
export function decodeCommand(frame: Frame): MilterCommand {
  const { code, payload } = frame;
  switch (code) {
    case CommandCode.OPTNEG: {
      const r = new PayloadReader(payload, 'OPTNEG');
      // libmilter requires at least 12 bytes and ignores anything after them.
      return { type: 'optneg', version: r.uint32('version'), actions: r.uint32('actions'), protocol: r.uint32('protocol') };
    }
    case CommandCode.MACRO:
      return decodeMacro(payload);
    case CommandCode.CONNECT:
      return decodeConnect(payload);
    case CommandCode.HELO: {
      const r = new PayloadReader(payload, 'HELO');
      return { type: 'helo', name: r.cstring('HELO name') };
    }
    case CommandCode.MAIL: {
      const [sender, ...esmtpArgs] = argv(payload, 'MAIL');
      return { type: 'mail', sender, esmtpArgs };
    }
    case CommandCode.RCPT: {
      const [recipient, ...esmtpArgs] = argv(payload, 'RCPT');
      return { type: 'rcpt', recipient, esmtpArgs };
    }
    case CommandCode.HEADER: {
      const r = new PayloadReader(payload, 'HEADER');
      const name = r.cstring('header name');
      const value = r.cstring('header value');
      return { type: 'header', name, value };
    }
    case CommandCode.BODY:
      return { type: 'body', chunk: payload };
    case CommandCode.BODYEOB:
      // Postfix and Sendmail send none, libmilter treats data here as a last body chunk.
      return { type: 'eom', chunk: payload };
    case CommandCode.UNKNOWN: {
      const r = new PayloadReader(payload, 'UNKNOWN');
      return { type: 'unknown', line: r.cstring('command line') };
    }
    // Data-less commands that carry data anyway are tolerated: nothing in the data changes their meaning.
    case CommandCode.DATA:
      return DATA;
    case CommandCode.EOH:
      return EOH;
    case CommandCode.ABORT:
      return ABORT;
    case CommandCode.QUIT:
      return QUIT;
    case CommandCode.QUIT_NC:
      return QUIT_NC;
    default:
      throw new MilterProtocolError('unknown-command', `unknown command byte 0x${code.toString(16).padStart(2, '0')} (${payload.length} payload bytes)`);
  }
}

const DATA = { type: 'data' } as const;
const EOH = { type: 'eoh' } as const;
const ABORT = { type: 'abort' } as const;
const QUIT = { type: 'quit' } as const;
const QUIT_NC = { type: 'quit-nc' } as const;

// Far above what an MTA sends (a handful of ESMTP parameters, a few dozen macros), far below what would keep the
// event loop busy: a 1 MiB packet of two-byte strings holds 260,000 of them.
const MAX_ESMTP_ARGS = 256;
const MAX_MACROS_PER_PACKET = 1024;

function argv(payload: Buffer, what: string): [string, ...string[]] {
  const r = new PayloadReader(payload, what);
  const first = r.cstring(`${what} address`);
  return [first, ...r.cstrings(`${what} ESMTP argument`, MAX_ESMTP_ARGS)];
}

function decodeMacro(payload: Buffer): MilterCommand {
  const r = new PayloadReader(payload, 'MACRO');
  const stage = r.byte('stage');
  const macros: MacroPair[] = [];
  // Values may be empty (`{mail_addr}\0\0` for the null sender): pair strictly, never split and filter.
  while (r.remaining > 0) {
    if (macros.length === MAX_MACROS_PER_PACKET) throw new MilterProtocolError('malformed-command', `MACRO: more than ${MAX_MACROS_PER_PACKET} macros in one packet`);
    const name = r.cstring('macro name');
    const value = r.cstring(`value of macro ${name}`);
    macros.push([name, value]);
  }
  return { type: 'macro', stage, macros };
}

function decodeConnect(payload: Buffer): ConnectCommand {
  const r = new PayloadReader(payload, 'CONNECT');
  const hostname = r.cstring('hostname');
  const family = String.fromCharCode(r.byte('family'));
  switch (family) {
    case AddressFamily.UNKNOWN:
      // Nothing follows the family byte.
      return { type: 'connect', hostname, family };
    case AddressFamily.INET:
    case AddressFamily.INET6:
    case AddressFamily.UNIX: {
      const port = r.uint16('port');
      // Tolerate a missing address after the port (rspamd does).
      const address = r.remaining > 0 ? r.cstring('address') : '';
      return { type: 'connect', hostname, family, port, address };
    }
    default:
      throw new MilterProtocolError('malformed-command', `CONNECT: unknown address family byte '${family}'`);
  }
}
