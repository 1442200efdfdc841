import { header } from "./common.js";
import { verifyHubSignature } from "./hub-signature.js";
import type { ProviderVerifier } from "./types.js";

/**
 * GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, as octokit's
 * webhooks-methods verifies it. Nothing time-based is signed, so replays are stopped only by
 * de-duplicating on `X-GitHub-Delivery` (kept across redeliveries). The `ping` sent on hook
 * creation needs no special answer: any 2xx does.
 */
export const github: ProviderVerifier = {
  name: "github",
  verify: (req, secrets, opts) => verifyHubSignature(req, secrets, opts),
  eventId: (req) => header(req, "x-github-delivery"),
};
