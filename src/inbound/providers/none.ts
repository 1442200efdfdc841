import { configuredEventId, OK } from "./common.js";
import { answerGenericHandshake } from "./graph.js";
import type { ProviderVerifier } from "./types.js";

/** No verification at all (e.g. Microsoft Graph, which signs nothing); answers Graph's validationToken. */
export const none: ProviderVerifier = {
  name: "none",
  verify: () => OK,
  handshake: (req) => answerGenericHandshake(req),
  eventId: (req, opts) => configuredEventId(req, opts.eventIdHeader, opts.eventIdPointer),
};
