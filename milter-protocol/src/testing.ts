// The MTA-side client, for tests and benchmarks of milters built on this package (and of any other milter).
export { MilterClient, POSTFIX_OFFER, type CommandReply, type MilterClientOptions, type OptnegReply } from './client.js';
