// Wire constants of the milter protocol v6, named after libmilter's mfdef.h symbols.
// `as const` objects rather than enums so the code stays erasable TypeScript.

/** Protocol version we speak; we answer min(offered, this). */
export const MILTER_VERSION = 6;

/** Largest data part (after the command byte) we put in one outgoing packet, as libmilter does. */
export const MAX_OUTGOING_DATA = 65535;

/** Default cap on an incoming packet's length field. Postfix can send one header larger than 64 KiB. */
export const DEFAULT_MAX_FRAME_LENGTH = 1024 * 1024;

/** Commands the MTA sends (SMFIC_*). */
export const CommandCode = {
  ABORT: 0x41, // 'A' SMFIC_ABORT
  BODY: 0x42, // 'B' SMFIC_BODY
  CONNECT: 0x43, // 'C' SMFIC_CONNECT
  MACRO: 0x44, // 'D' SMFIC_MACRO
  BODYEOB: 0x45, // 'E' SMFIC_BODYEOB
  HELO: 0x48, // 'H' SMFIC_HELO
  QUIT_NC: 0x4b, // 'K' SMFIC_QUIT_NC
  HEADER: 0x4c, // 'L' SMFIC_HEADER
  MAIL: 0x4d, // 'M' SMFIC_MAIL
  EOH: 0x4e, // 'N' SMFIC_EOH
  OPTNEG: 0x4f, // 'O' SMFIC_OPTNEG
  QUIT: 0x51, // 'Q' SMFIC_QUIT
  RCPT: 0x52, // 'R' SMFIC_RCPT
  DATA: 0x54, // 'T' SMFIC_DATA
  UNKNOWN: 0x55, // 'U' SMFIC_UNKNOWN
} as const;
export type CommandCode = (typeof CommandCode)[keyof typeof CommandCode];

/** Responses the milter sends (SMFIR_*). */
export const ResponseCode = {
  ADDRCPT: 0x2b, // '+' SMFIR_ADDRCPT
  DELRCPT: 0x2d, // '-' SMFIR_DELRCPT
  ADDRCPT_PAR: 0x32, // '2' SMFIR_ADDRCPT_PAR
  SHUTDOWN: 0x34, // '4' SMFIR_SHUTDOWN
  OPTNEG: 0x4f, // 'O' reply to SMFIC_OPTNEG
  ACCEPT: 0x61, // 'a' SMFIR_ACCEPT
  REPLBODY: 0x62, // 'b' SMFIR_REPLBODY
  CONTINUE: 0x63, // 'c' SMFIR_CONTINUE
  DISCARD: 0x64, // 'd' SMFIR_DISCARD
  CHGFROM: 0x65, // 'e' SMFIR_CHGFROM
  CONN_FAIL: 0x66, // 'f' SMFIR_CONN_FAIL (defined, implemented by no MTA: never sent)
  ADDHEADER: 0x68, // 'h' SMFIR_ADDHEADER
  INSHEADER: 0x69, // 'i' SMFIR_INSHEADER
  SETSYMLIST: 0x6c, // 'l' SMFIR_SETSYMLIST (never a packet; rides in the OPTNEG reply)
  CHGHEADER: 0x6d, // 'm' SMFIR_CHGHEADER
  PROGRESS: 0x70, // 'p' SMFIR_PROGRESS
  QUARANTINE: 0x71, // 'q' SMFIR_QUARANTINE
  REJECT: 0x72, // 'r' SMFIR_REJECT
  SKIP: 0x73, // 's' SMFIR_SKIP
  TEMPFAIL: 0x74, // 't' SMFIR_TEMPFAIL
  REPLYCODE: 0x79, // 'y' SMFIR_REPLYCODE
} as const;
export type ResponseCode = (typeof ResponseCode)[keyof typeof ResponseCode];

/** Actions the milter may take (SMFIF_*), second word of OPTNEG. */
export const ActionFlag = {
  ADDHDRS: 0x001,
  CHGBODY: 0x002,
  ADDRCPT: 0x004,
  DELRCPT: 0x008,
  CHGHDRS: 0x010,
  QUARANTINE: 0x020,
  CHGFROM: 0x040,
  ADDRCPT_PAR: 0x080,
  SETSYMLIST: 0x100,
} as const;
export type ActionFlag = (typeof ActionFlag)[keyof typeof ActionFlag];
/** Every v6 action (SMFI_CURR_ACTS). */
export const ALL_ACTIONS = 0x1ff;

/** Protocol steps and features (SMFIP_*), third word of OPTNEG. */
export const ProtocolFlag = {
  NOCONNECT: 0x00000001,
  NOHELO: 0x00000002,
  NOMAIL: 0x00000004,
  NORCPT: 0x00000008,
  NOBODY: 0x00000010,
  NOHDRS: 0x00000020,
  NOEOH: 0x00000040,
  NR_HDR: 0x00000080,
  NOUNKNOWN: 0x00000100,
  NODATA: 0x00000200,
  SKIP: 0x00000400,
  RCPT_REJ: 0x00000800,
  NR_CONN: 0x00001000,
  NR_HELO: 0x00002000,
  NR_MAIL: 0x00004000,
  NR_RCPT: 0x00008000,
  NR_DATA: 0x00010000,
  NR_UNKN: 0x00020000,
  NR_EOH: 0x00040000,
  NR_BODY: 0x00080000,
  HDR_LEADSPC: 0x00100000,
} as const;
export type ProtocolFlag = (typeof ProtocolFlag)[keyof typeof ProtocolFlag];
/** Every v6 protocol bit (SMFI_CURR_PROT). */
export const ALL_PROTOCOL_STEPS = 0x001fffff;

/** Macro stages (SMFIM_*) used in SETSYMLIST requests. Note EOM (5) comes before EOH (6). */
export const MacroStage = {
  CONNECT: 0,
  HELO: 1,
  ENVFROM: 2,
  ENVRCPT: 3,
  DATA: 4,
  EOM: 5,
  EOH: 6,
} as const;
export type MacroStage = (typeof MacroStage)[keyof typeof MacroStage];

/** CONNECT address families as the MTA sends them. */
export const AddressFamily = {
  UNKNOWN: 'U',
  UNIX: 'L',
  INET: '4',
  INET6: '6',
} as const;
export type AddressFamily = (typeof AddressFamily)[keyof typeof AddressFamily];
