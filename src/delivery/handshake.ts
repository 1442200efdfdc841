import { randomBytes } from "node:crypto";
import type { Clock } from "../core/clock.js";
import { newId } from "../core/ids.js";
import { buildSignatureHeaders, signPayload } from "../signing/standard-webhooks.js";
import type { Store } from "../store/store.js";
import type { Endpoint } from "../store/types.js";
import type { HttpSender } from "./http-sender.js";
import type { RetryPolicy } from "./retry-policy.js";
import { signingKeys, USER_AGENT } from "./signed-request.js";

export const VERIFICATION_EVENT_TYPE = "webhook.verification";

export type HandshakeResult = { verified: true } | { verified: false; reason: string };

/** The endpoint's answer passes when it is 2xx and echoes the challenge, as JSON or as plain text. */
export function answerEchoesChallenge(body: string, challenge: string): boolean {
  const text = body.trim();
  if (text === challenge) return true;
  try {
    const parsed = JSON.parse(text) as { challenge?: unknown };
    return parsed !== null && typeof parsed === "object" && parsed.challenge === challenge;
  } catch {
    return false;
  }
}

/**
 * The registration handshake: before an endpoint gets real events, Pigeon proves the URL wants
 * them. It POSTs a signed `webhook.verification` carrying a random challenge; the endpoint must
 * answer 2xx echoing it. Until then deliveries for it are held, not dropped. Failed tries are
 * retried on the delivery retry schedule; after that, only an explicit re-verify tries again.
 */
export class Handshaker {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /**
   * Handshakes in flight, by endpoint and URL: a URL change during the old URL's handshake must
   * not refuse the new URL's as "already in progress" (nothing would ever challenge it again).
   */
  private readonly inProgress = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly sender: HttpSender,
    private readonly retry: RetryPolicy,
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    private readonly pollIntervalMs: number,
    private readonly onVerified: (endpointId: string) => void,
  ) {}

  start(): void {
    this.running = true;
    this.schedule(0);
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Try now (new endpoint, or the re-verify API); the result is also recorded for the poller. */
  async verify(endpoint: Endpoint, options: { retry: boolean } = { retry: true }): Promise<HandshakeResult> {
    const key = `${endpoint.id} ${endpoint.url}`;
    if (this.inProgress.has(key)) return { verified: false, reason: "a handshake is already in progress" };
    this.inProgress.add(key);
    try {
      const result = await this.challenge(endpoint);
      const now = this.clock.now();
      if (result.verified) {
        // Verifies the URL that answered, and only while the endpoint still has it: one changed
        // meanwhile has a handshake of its own (started with the change) to pass.
        const released = await this.store.markEndpointVerified(endpoint.id, endpoint.url, now);
        if (released === undefined)
          return { verified: false, reason: "the endpoint's URL changed during the handshake" };
        this.onVerified(endpoint.id);
      } else {
        const attempts = endpoint.handshakeAttempts + 1;
        const delay = options.retry ? this.retry.nextDelayMs(attempts) : undefined;
        // Recorded only while the endpoint has this URL: an old URL's failure must not push back
        // or stop the new URL's handshake.
        await this.store.scheduleHandshake(
          endpoint.id,
          attempts,
          delay === undefined ? null : now + delay,
          endpoint.url,
        );
      }
      return result;
    } finally {
      this.inProgress.delete(key);
    }
  }

  private async challenge(endpoint: Endpoint): Promise<HandshakeResult> {
    const now = this.clock.now();
    const challenge = randomBytes(24).toString("base64url");
    const webhookId = newId("msg", now);
    const body = Buffer.from(
      JSON.stringify({
        type: VERIFICATION_EVENT_TYPE,
        timestamp: new Date(now).toISOString(),
        data: { challenge, endpointId: endpoint.id },
      }),
    );
    const timestampSec = Math.floor(now / 1000);
    const signature = signPayload(signingKeys(endpoint.secrets, now), webhookId, timestampSec, body);
    const result = await this.sender.send({
      url: endpoint.url,
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        ...buildSignatureHeaders({
          msgId: webhookId,
          timestampSec,
          signature,
          headerStyle: endpoint.headerStyle,
        }),
      },
      body,
      timeoutMs: endpoint.timeoutMs ?? this.timeoutMs,
    });
    if (!result.ok) {
      return {
        verified: false,
        reason: result.errorCode === "http_status" ? `HTTP ${result.status}` : `${result.errorCode}`,
      };
    }
    if (!answerEchoesChallenge(result.responseBody, challenge)) {
      return { verified: false, reason: "the response did not echo the challenge" };
    }
    return { verified: true };
  }

  private schedule(delay: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => void this.poll(), delay);
    this.timer.unref?.();
  }

  private async poll(): Promise<void> {
    try {
      const due = await this.store.listEndpointsDueForHandshake(this.clock.now(), 50);
      await Promise.all(due.map((endpoint) => this.verify(endpoint)));
    } catch (error) {
      console.error("pigeon: handshake poll failed; retrying", error);
    }
    this.schedule(this.pollIntervalMs);
  }
}
