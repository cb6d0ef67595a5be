// Byte vectors from ../../../shared/milter-protocol.md §10 (V1…V49). Those marked [cap] are byte-identical to
// what Postfix 3.7.11 sent or accepted in a live capture. Written as hex so the tests do not trust our encoder.

export function hex(text: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error(`bad hex vector: ${text}`);
  return Buffer.from(clean, 'hex');
}

/** Commands the MTA sends, with what they must decode to. */
export const COMMAND_VECTORS = {
  V1_optneg: hex('00 00 00 0D 4F 00 00 00 06 00 00 01 FF 00 1F FF FF'),
  V4_macros_connect: hex(`00 00 00 58 44 43 7B 63 6C 69 65 6E 74 5F 61 64 64 72 7D 00 31 32 37 2E 30 2E 30 2E 31 00 7B 63
    6C 69 65 6E 74 5F 6E 61 6D 65 7D 00 6C 6F 63 61 6C 68 6F 73 74 00 7B 63 6C 69 65 6E 74 5F 70 6F
    72 74 7D 00 34 31 32 33 36 00 6A 00 6D 78 2E 65 78 61 6D 70 6C 65 2E 74 65 73 74 00`),
  V5_connect_localhost: hex('00 00 00 18 43 6C 6F 63 61 6C 68 6F 73 74 00 34 A1 14 31 32 37 2E 30 2E 30 2E 31 00'),
  V6_connect_ipv4: hex(`00 00 00 20 43 6D 61 69 6C 2E 65 78 61 6D 70 6C 65 2E 63 6F 6D 00 34 D4 31 31 39 32 2E 30 2E 32
    2E 31 30 00`),
  V7_connect_ipv6_postfix: hex(`00 00 00 20 43 5B 32 30 30 31 3A 64 62 38 3A 3A 32 35 5D 00 36 61 A8 32 30 30 31 3A 64 62 38 3A
    3A 32 35 00`),
  V8_connect_ipv6_sendmail: hex(`00 00 00 25 43 6D 78 2E 65 78 61 6D 70 6C 65 2E 6F 72 67 00 36 61 A8 49 50 76 36 3A 32 30 30 31
    3A 64 62 38 3A 3A 32 35 00`),
  V9_connect_unknown: hex('00 00 00 0A 43 75 6E 6B 6E 6F 77 6E 00 55'),
  V10_connect_unix: hex('00 00 00 1C 43 6C 6F 63 61 6C 68 6F 73 74 00 4C 00 00 2F 76 61 72 2F 72 75 6E 2F 73 6F 63 6B 00'),
  V11_connect_non_smtpd: hex('00 00 00 18 43 6C 6F 63 61 6C 68 6F 73 74 00 34 00 00 31 32 37 2E 30 2E 30 2E 31 00'),
  V12_macros_connect_default: hex(`00 00 00 73 44 43 6A 00 6D 78 2E 65 78 61 6D 70 6C 65 2E 74 65 73 74 00 7B 64 61 65 6D 6F 6E 5F
    6E 61 6D 65 7D 00 6D 78 2E 65 78 61 6D 70 6C 65 2E 74 65 73 74 00 7B 64 61 65 6D 6F 6E 5F 61 64
    64 72 7D 00 31 32 37 2E 30 2E 30 2E 31 00 76 00 50 6F 73 74 66 69 78 20 33 2E 37 2E 31 31 00 5F
    00 6C 6F 63 61 6C 68 6F 73 74 20 5B 31 32 37 2E 30 2E 30 2E 31 5D 00`),
  V13_macros_helo_empty: hex('00 00 00 02 44 48'),
  V14_macros_mail: hex(`00 00 00 4E 44 4D 7B 6D 61 69 6C 5F 61 64 64 72 7D 00 61 6C 69 63 65 40 65 78 61 6D 70 6C 65 2E
    6F 72 67 00 7B 6D 61 69 6C 5F 68 6F 73 74 7D 00 65 78 61 6D 70 6C 65 2E 6F 72 67 00 7B 6D 61 69
    6C 5F 6D 61 69 6C 65 72 7D 00 64 69 73 63 61 72 64 00`),
  V15_macros_mail_null_sender: hex(`00 00 00 41 44 4D 7B 6D 61 69 6C 5F 61 64 64 72 7D 00 00 7B 6D 61 69 6C 5F 68 6F 73 74 7D 00 6D
    78 2E 65 78 61 6D 70 6C 65 2E 74 65 73 74 00 7B 6D 61 69 6C 5F 6D 61 69 6C 65 72 7D 00 64 69 73
    63 61 72 64 00`),
  V16_macros_rcpt_rejected: hex(`00 00 00 70 44 52 69 00 44 32 38 38 44 32 30 43 33 35 42 00 7B 72 63 70 74 5F 61 64 64 72 7D 00
    52 65 63 69 70 69 65 6E 74 20 61 64 64 72 65 73 73 20 72 65 6A 65 63 74 65 64 3A 20 4E 6F 20 73
    75 63 68 20 75 73 65 72 20 68 65 72 65 00 7B 72 63 70 74 5F 68 6F 73 74 7D 00 35 2E 31 2E 31 00
    7B 72 63 70 74 5F 6D 61 69 6C 65 72 7D 00 65 72 72 6F 72 00`),
  V17_macros_header: hex('00 00 00 10 44 4C 69 00 30 35 37 45 43 32 30 43 32 37 32 00'),
  V18_helo: hex('00 00 00 14 48 63 6C 69 65 6E 74 2E 65 78 61 6D 70 6C 65 2E 6E 65 74 00'),
  V19_mail_with_size: hex(`00 00 00 21 4D 3C 61 6C 69 63 65 40 65 78 61 6D 70 6C 65 2E 6F 72 67 3E 00 53 49 5A 45 3D 31 30
    30 30 30 30 00`),
  V20_mail_null_sender: hex('00 00 00 04 4D 3C 3E 00'),
  V21_mail_non_smtp: hex('00 00 00 13 4D 61 6C 69 63 65 40 65 78 61 6D 70 6C 65 2E 6F 72 67 00'),
  V22_rcpt: hex('00 00 00 18 52 3C 72 6F 6F 74 40 6D 78 2E 65 78 61 6D 70 6C 65 2E 74 65 73 74 3E 00'),
  V23_header_subject: hex('00 00 00 0F 4C 53 75 62 6A 65 63 74 00 48 65 6C 6C 6F 00'),
  V24_header_folded: hex(`00 00 00 22 4C 54 6F 00 61 40 65 78 61 6D 70 6C 65 2E 63 6F 6D 2C 0A 09 62 40 65 78 61 6D 70 6C
    65 2E 63 6F 6D 00`),
  V25_header_empty_value: hex('00 00 00 0A 4C 58 2D 45 6D 70 74 79 00 00'),
  V26_header_8bit: hex('00 00 00 0E 4C 58 2D 45 69 67 68 74 00 63 61 66 E9 00'),
  V27_header_tab: hex('00 00 00 0E 4C 58 2D 54 61 62 00 09 76 61 6C 75 65 00'),
  V28_body: hex('00 00 00 07 42 62 6F 64 79 0D 0A'),
  V30_unknown: hex('00 00 00 07 55 58 59 5A 5A 59 00'),
  V31_data: hex('00 00 00 01 54'),
  V31_eoh: hex('00 00 00 01 4E'),
  V31_eom: hex('00 00 00 01 45'),
  V31_abort: hex('00 00 00 01 41'),
  V31_quit: hex('00 00 00 01 51'),
  V32_quit_nc: hex('00 00 00 01 4B'),
} as const;

/** Responses the milter sends. */
export const RESPONSE_VECTORS = {
  V2_optneg_all: hex('00 00 00 0D 4F 00 00 00 06 00 00 01 FF 00 00 00 00'),
  V3_optneg_some: hex('00 00 00 0D 4F 00 00 00 06 00 00 00 11 00 10 05 80'),
  V4_optneg_macros: hex(`00 00 00 4F 4F 00 00 00 06 00 00 01 FF 00 00 00 00 00 00 00 00 7B 63 6C 69 65 6E 74 5F 61 64 64
    72 7D 20 7B 63 6C 69 65 6E 74 5F 6E 61 6D 65 7D 20 7B 63 6C 69 65 6E 74 5F 70 6F 72 74 7D 20 6A
    00 00 00 00 02 7B 6D 61 69 6C 5F 61 64 64 72 7D 20 69 00`),
  V33_continue: hex('00 00 00 01 63'),
  V33_accept: hex('00 00 00 01 61'),
  V33_progress: hex('00 00 00 01 70'),
  V33_skip: hex('00 00 00 01 73'),
  V34_reject: hex('00 00 00 01 72'),
  V34_tempfail: hex('00 00 00 01 74'),
  V34_discard: hex('00 00 00 01 64'),
  V34_shutdown: hex('00 00 00 01 34'),
  V35_replycode: hex(`00 00 00 27 79 35 35 30 20 35 2E 37 2E 31 20 52 65 63 69 70 69 65 6E 74 20 62 6C 6F 63 6B 65 64
    20 62 79 20 6D 69 6C 74 65 72 00`),
  V37_replycode_multiline: hex(`00 00 00 28 79 35 35 30 2D 35 2E 37 2E 31 20 4C 69 6E 65 20 6F 6E 65 0D 0A 35 35 30 20 35 2E 37
    2E 31 20 4C 69 6E 65 20 74 77 6F 00`),
  V38_replycode_percent: hex(`00 00 00 22 79 34 35 31 20 34 2E 37 2E 31 20 47 72 65 79 6C 69 73 74 65 64 2C 20 31 30 30 25 25
    20 73 75 72 65 00`),
  V39_addheader: hex('00 00 00 0B 68 58 2D 52 65 63 00 79 65 73 00'),
  V40_chgheader: hex('00 00 00 1D 6D 00 00 00 01 53 75 62 6A 65 63 74 00 63 68 61 6E 67 65 64 20 73 75 62 6A 65 63 74 00'),
  V41_chgheader_delete: hex('00 00 00 0A 6D 00 00 00 01 58 2D 41 00 00'),
  V42_insheader: hex('00 00 00 16 69 00 00 00 00 58 2D 54 6F 70 00 61 74 20 69 6E 64 65 78 20 30 00'),
  V43_addheader_folded: hex('00 00 00 16 68 58 2D 46 6F 6C 64 00 66 69 72 73 74 0A 09 73 65 63 6F 6E 64 00'),
  V44_quarantine: hex('00 00 00 0E 71 68 65 6C 64 20 62 79 20 74 65 73 74 00'),
  V45_replbody: hex('00 00 00 1A 62 6E 65 77 20 62 6F 64 79 20 6C 69 6E 65 20 31 0D 0A 6C 69 6E 65 20 32 0D 0A'),
  V46_addrcpt: hex('00 00 00 15 2B 3C 63 61 72 6F 6C 40 65 78 61 6D 70 6C 65 2E 63 6F 6D 3E 00'),
  V47_delrcpt: hex('00 00 00 13 2D 3C 62 6F 62 40 65 78 61 6D 70 6C 65 2E 63 6F 6D 3E 00'),
  V48_addrcpt_par: hex(`00 00 00 21 32 3C 64 61 76 65 40 65 78 61 6D 70 6C 65 2E 63 6F 6D 3E 00 4E 4F 54 49 46 59 3D 4E
    45 56 45 52 00`),
  V49_chgfrom: hex(`00 00 00 2C 65 3C 62 6F 75 6E 63 65 40 65 78 61 6D 70 6C 65 2E 6F 72 67 3E 00 52 45 54 3D 48 44
    52 53 20 45 4E 56 49 44 3D 61 62 63 31 32 33 00`),
} as const;
