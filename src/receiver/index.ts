export type { HandshakeResponse, ProviderName, VerifyResult } from "../inbound/providers/types.js";
export { NonRetryableError } from "../inbound/retry.js";
export type { FieldRef, InboundEvent, InboundHandler, InboxItem, InboxStatus } from "../inbound/types.js";
export { createReceiver, type Receiver, type ReceiverOptions } from "./receiver.js";
export {
  answerHandshake,
  type VerifiableRequest,
  type VerifyOptions,
  verify,
  verifyRequest,
} from "./verify.js";
