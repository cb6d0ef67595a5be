// The MTA side of the codec: typed commands → packets. Used by the test/benchmark client.
import { AddressFamily, CommandCode } from './constants.js';
import { encodeFrame } from './frame-decoder.js';
import { cstr, uint32 } from './payload-writer.js';
import type { MilterCommand } from './messages.js';


export function encodeCommand(command: MilterCommand): Buffer {
  switch (command.type) {
    case 'optneg':
      return encodeFrame(CommandCode.OPTNEG, [uint32(command.version), uint32(command.actions), uint32(command.protocol)]);
    case 'macro':
      return encodeFrame(CommandCode.MACRO, [Buffer.from([command.stage]), ...command.macros.flatMap(([n, v]) => [...cstr(n), ...cstr(v)])]);
    case 'connect': {
      const head = [...cstr(command.hostname), Buffer.from(command.family, 'latin1')];
      if (command.family === AddressFamily.UNKNOWN) return encodeFrame(CommandCode.CONNECT, head);
      const port = Buffer.allocUnsafe(2);
      port.writeUInt16BE(command.port, 0);
      return encodeFrame(CommandCode.CONNECT, [...head, port, ...cstr(command.address)]);
    }
    case 'helo':
      return encodeFrame(CommandCode.HELO, cstr(command.name));
    case 'mail':
      return encodeFrame(CommandCode.MAIL, [command.sender, ...command.esmtpArgs].flatMap(cstr));
    case 'rcpt':
      return encodeFrame(CommandCode.RCPT, [command.recipient, ...command.esmtpArgs].flatMap(cstr));
    case 'data':
      return encodeFrame(CommandCode.DATA);
    case 'header':
      return encodeFrame(CommandCode.HEADER, [...cstr(command.name), ...cstr(command.value)]);
    case 'eoh':
      return encodeFrame(CommandCode.EOH);
    case 'body':
      return encodeFrame(CommandCode.BODY, command.chunk);
    case 'eom':
      return encodeFrame(CommandCode.BODYEOB, command.chunk);
    case 'unknown':
      return encodeFrame(CommandCode.UNKNOWN, cstr(command.line));
    case 'abort':
      return encodeFrame(CommandCode.ABORT);
    case 'quit':
      return encodeFrame(CommandCode.QUIT);
    case 'quit-nc':
      return encodeFrame(CommandCode.QUIT_NC);
  }
}
