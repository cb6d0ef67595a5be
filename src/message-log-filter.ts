// Until the policies land (relay, attachments, virus), `serve` runs this filter: it lets every message
// through and writes one log line per message, so an administrator can see the milter is wired in.
import type { MilterFilter } from '@postfix-milter-ts/protocol';
import type { Logger } from './log.js';

interface MessageState {
  sender: string | undefined;
  recipients: number;
  bytes: number;
  startedAt: number;
}

interface SessionState {
  message: MessageState | undefined;
}

export function createMessageLogFilter(log: Logger): MilterFilter<SessionState> {
  return {
    macros: { connect: ['j', '{daemon_name}', '{client_addr}', '{client_name}'], envfrom: ['i', '{auth_authen}', '{mail_addr}'], eom: ['i'] },
    createState: () => ({ message: undefined }),
    connect(session, info) {
      log.debug({ session: session.id, client: info.address, name: info.hostname, mta: session.mta }, 'connect');
    },
    envfrom(session, sender) {
      session.state.message = { sender, recipients: 0, bytes: 0, startedAt: performance.now() };
    },
    envrcpt(session) {
      if (session.state.message) session.state.message.recipients++;
    },
    body(session, chunk) {
      if (session.state.message) session.state.message.bytes += chunk.length;
    },
    eom(session) {
      const m = session.state.message;
      log.info(
        {
          session: session.id,
          queueId: session.macro('i'),
          client: session.connection?.address,
          clientName: session.connection?.hostname,
          helo: session.helo,
          sender: m?.sender,
          recipients: m?.recipients,
          bodyBytes: m?.bytes,
          verdict: 'continue',
          ms: m ? Math.round(performance.now() - m.startedAt) : undefined,
        },
        'message',
      );
      session.state.message = undefined;
    },
    abort(session) {
      session.state.message = undefined;
    },
  };
}
