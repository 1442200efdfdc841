import { type StringOptions, type TSchema, Type } from "@sinclair/typebox";
import { STORABLE_TEXT_PATTERN } from "../core/json-schema.js";
import { PROVIDER_NAMES } from "../inbound/providers/index.js";

/**
 * The wire schemas, named as in Svix's OpenAPI document. Requests are validated with them and the
 * OpenAPI document at /api/v1/openapi.json is generated from them, so the two cannot drift.
 * The svix 1.x client sends `filterTypes`/`rateLimit` where the spec says `eventTypes`/`throttleRate`:
 * both are accepted and both are returned.
 */

/** What a uid may be: what `Uid` validates, for a uid that comes from a path instead of a body. */
export const UID_PATTERN = "^[a-zA-Z0-9\\-_.]+$";
export const UID_MAX_LENGTH = 256;
const Uid = Type.String({
  minLength: 1,
  maxLength: UID_MAX_LENGTH,
  pattern: UID_PATTERN,
  description: "Your own identifier; usable wherever the id is.",
});
/**
 * Free text that is stored in a text column (names, descriptions, a message's eventId) or looks a
 * record up (a forward target): NUL (U+0000) is refused with a 422 naming the field, because
 * PostgreSQL text cannot hold it. Fields with a `pattern` of their own (uids, event type names,
 * channels, secrets) already exclude it.
 *
 * JSON documents keep NUL: a message payload, metadata, tags, event-type schemas and source
 * secrets and options are stored as JSON text (a `text` or `json` column), where NUL is the
 * `\u0000` escape PostgreSQL accepts, and nothing reads them back as SQL text. They round-trip
 * unchanged on both backends, and a payload is delivered as the JSON text accepted, as signed.
 */
const Text = (options: StringOptions = {}) => Type.String({ ...options, pattern: STORABLE_TEXT_PATTERN });
const Metadata = Type.Record(Type.String(), Type.String());
const RateLimit = Type.Integer({ minimum: 1, maximum: 65535, description: "Requests per second." });
export const EVENT_TYPE_NAME_PATTERN = "^[a-zA-Z0-9\\-_.*]+$";
export const EVENT_TYPE_NAME_MAX_LENGTH = 256;
const EventTypeName = Type.String({
  minLength: 1,
  maxLength: EVENT_TYPE_NAME_MAX_LENGTH,
  pattern: EVENT_TYPE_NAME_PATTERN,
});
const Channel = Type.String({ minLength: 1, maxLength: 128, pattern: "^[a-zA-Z0-9\\-_.:]+$" });
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Opt = <T extends TSchema>(schema: T) => Type.Optional(Nullable(schema));

export const HandshakeModeSchema = Type.Union([
  Type.Literal("required"),
  Type.Literal("optional"),
  Type.Literal("off"),
]);

export const ApplicationIn = Type.Object(
  {
    name: Text({ minLength: 1, maxLength: 256 }),
    uid: Opt(Uid),
    metadata: Type.Optional(Metadata),
    throttleRate: Opt(RateLimit),
    rateLimit: Opt(RateLimit),
    handshake: Opt(HandshakeModeSchema),
  },
  { title: "ApplicationIn", additionalProperties: false },
);

export const ApplicationPatch = Type.Partial(ApplicationIn, {
  title: "ApplicationPatch",
  additionalProperties: false,
});

export const ApplicationOut = Type.Object(
  {
    id: Type.String(),
    uid: Type.Optional(Nullable(Type.String())),
    name: Type.String(),
    metadata: Metadata,
    throttleRate: Type.Optional(Nullable(Type.Integer())),
    rateLimit: Type.Optional(Nullable(Type.Integer())),
    handshake: Type.Optional(Nullable(HandshakeModeSchema)),
    createdAt: Type.String({ format: "date-time" }),
    updatedAt: Type.String({ format: "date-time" }),
  },
  { title: "ApplicationOut" },
);

export const EventTypeIn = Type.Object(
  {
    name: EventTypeName,
    description: Text({ maxLength: 4096 }),
    archived: Type.Optional(Type.Boolean()),
    deprecated: Type.Optional(Type.Boolean()),
    featureFlag: Opt(Text({ maxLength: 256 })),
    featureFlags: Opt(Type.Array(Type.String())),
    groupName: Opt(Type.String()),
    schemas: Opt(Type.Record(Type.String(), Type.Any())),
  },
  { title: "EventTypeIn", additionalProperties: false },
);

export const EventTypeUpdate = Type.Object(
  {
    description: Text({ maxLength: 4096 }),
    archived: Type.Optional(Type.Boolean()),
    deprecated: Type.Optional(Type.Boolean()),
    featureFlag: Opt(Text({ maxLength: 256 })),
    featureFlags: Opt(Type.Array(Type.String())),
    groupName: Opt(Type.String()),
    schemas: Opt(Type.Record(Type.String(), Type.Any())),
  },
  { title: "EventTypeUpdate", additionalProperties: false },
);

/** Svix's EventTypePatch: every field optional, so a client sends only what it changes. */
export const EventTypePatch = Type.Partial(EventTypeUpdate, {
  title: "EventTypePatch",
  additionalProperties: false,
});

export const EventTypeOut = Type.Object(
  {
    name: Type.String(),
    description: Type.String(),
    archived: Type.Boolean(),
    deprecated: Type.Boolean(),
    featureFlag: Type.Optional(Nullable(Type.String())),
    schemas: Type.Optional(Nullable(Type.Record(Type.String(), Type.Any()))),
    createdAt: Type.String({ format: "date-time" }),
    updatedAt: Type.String({ format: "date-time" }),
  },
  { title: "EventTypeOut" },
);

const HttpMethodSchema = Type.Union([Type.Literal("POST"), Type.Literal("PUT"), Type.Literal("GET")]);
const BodyFormatSchema = Type.Union([Type.Literal("json"), Type.Literal("form"), Type.Literal("xml")]);
const HeaderStyleSchema = Type.Union([Type.Literal("webhook"), Type.Literal("svix")]);

const endpointFields = {
  url: Type.String({ minLength: 1, maxLength: 65536, format: "uri" }),
  description: Type.Optional(Text({ maxLength: 4096 })),
  uid: Opt(Uid),
  // A 32-bit integer, as the column that stores it (PostgreSQL refused more with a 500).
  version: Opt(Type.Integer({ minimum: 1, maximum: 2_147_483_647 })),
  disabled: Type.Optional(Type.Boolean()),
  eventTypes: Opt(Type.Array(EventTypeName, { minItems: 1, uniqueItems: true })),
  filterTypes: Opt(Type.Array(EventTypeName, { minItems: 1, uniqueItems: true })),
  channels: Opt(Type.Array(Channel, { minItems: 1, maxItems: 10, uniqueItems: true })),
  throttleRate: Opt(RateLimit),
  rateLimit: Opt(RateLimit),
  metadata: Type.Optional(Metadata),
  headers: Opt(Type.Record(Type.String(), Type.String())),
  // Pigeon extensions.
  timeoutMs: Opt(
    Type.Integer({ minimum: 1000, maximum: 30000, description: "Per-attempt timeout, 1–30 s." }),
  ),
  method: Opt(HttpMethodSchema),
  bodyFormat: Opt(BodyFormatSchema),
  headerStyle: Opt(HeaderStyleSchema),
};

export const EndpointIn = Type.Object(
  {
    ...endpointFields,
    secret: Opt(
      Type.String({ pattern: "^(whsec_)?[a-zA-Z0-9+/=]{32,100}$", description: "whsec_ followed by base64" }),
    ),
  },
  { title: "EndpointIn", additionalProperties: false },
);

export const EndpointUpdate = Type.Object(endpointFields, {
  title: "EndpointUpdate",
  additionalProperties: false,
});
export const EndpointPatch = Type.Partial(Type.Object(endpointFields), {
  title: "EndpointPatch",
  additionalProperties: false,
});

export const EndpointOut = Type.Object(
  {
    id: Type.String(),
    uid: Type.Optional(Nullable(Type.String())),
    url: Type.String(),
    description: Type.String(),
    version: Type.Integer(),
    disabled: Type.Boolean(),
    eventTypes: Type.Optional(Nullable(Type.Array(Type.String()))),
    filterTypes: Type.Optional(Nullable(Type.Array(Type.String()))),
    channels: Type.Optional(Nullable(Type.Array(Type.String()))),
    throttleRate: Type.Optional(Nullable(Type.Integer())),
    rateLimit: Type.Optional(Nullable(Type.Integer())),
    metadata: Metadata,
    status: Type.Union([Type.Literal("pending"), Type.Literal("active")]),
    verifiedAt: Type.Optional(Nullable(Type.String({ format: "date-time" }))),
    timeoutMs: Type.Optional(Nullable(Type.Integer())),
    method: HttpMethodSchema,
    bodyFormat: BodyFormatSchema,
    headerStyle: HeaderStyleSchema,
    createdAt: Type.String({ format: "date-time" }),
    updatedAt: Type.String({ format: "date-time" }),
  },
  { title: "EndpointOut" },
);

export const EndpointSecretOut = Type.Object({ key: Type.String() }, { title: "EndpointSecretOut" });
export const EndpointSecretRotateIn = Type.Object(
  {
    key: Opt(Type.String({ pattern: "^(whsec_)?[a-zA-Z0-9+/=]{32,100}$" })),
    gracePeriodSeconds: Opt(Type.Integer({ minimum: 0, maximum: 604800 })),
  },
  { title: "EndpointSecretRotateIn", additionalProperties: false },
);

export const EndpointHeadersIn = Type.Object(
  { headers: Type.Record(Type.String({ pattern: "^[a-zA-Z0-9!#$%&'*+.^_`|~-]+$" }), Type.String()) },
  { title: "EndpointHeadersIn", additionalProperties: false },
);
export const EndpointHeadersPatchIn = Type.Object(
  { headers: Type.Record(Type.String(), Nullable(Type.String())) },
  { title: "EndpointHeadersPatchIn", additionalProperties: false },
);
export const EndpointHeadersOut = Type.Object(
  { headers: Type.Record(Type.String(), Type.String()), sensitive: Type.Array(Type.String()) },
  { title: "EndpointHeadersOut" },
);

export const EndpointStats = Type.Object(
  {
    success: Type.Integer(),
    pending: Type.Integer(),
    sending: Type.Integer(),
    fail: Type.Integer(),
    canceled: Type.Integer(),
  },
  { title: "EndpointStats" },
);

export const MessageIn = Type.Object(
  {
    eventType: EventTypeName,
    eventId: Opt(Text({ minLength: 1, maxLength: 256 })),
    payload: Type.Record(Type.String(), Type.Any()),
    channels: Opt(Type.Array(Channel, { minItems: 1, maxItems: 10, uniqueItems: true })),
    tags: Opt(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 5 })),
    application: Type.Optional(ApplicationIn),
    payloadRetentionPeriod: Opt(Type.Integer()),
    payloadRetentionHours: Opt(Type.Integer()),
    deliverAt: Opt(Type.String({ format: "date-time" })),
    transformationsParams: Opt(Type.Any()),
  },
  { title: "MessageIn", additionalProperties: false },
);

/**
 * What the embedded API publishes (`SqliteOutbox`, `tx.publish`): MessageIn's own fields, checked
 * by the same rules, without the HTTP route's extras (creating the application, retention).
 */
export const PublishIn = Type.Pick(MessageIn, ["eventType", "eventId", "payload", "channels", "tags"], {
  title: "PublishIn",
  additionalProperties: false,
});

export const MessageOut = Type.Object(
  {
    id: Type.String(),
    eventType: Type.String(),
    eventId: Type.Optional(Nullable(Type.String())),
    payload: Type.Record(Type.String(), Type.Any()),
    channels: Type.Optional(Nullable(Type.Array(Type.String()))),
    tags: Type.Optional(Nullable(Type.Array(Type.String()))),
    timestamp: Type.String({ format: "date-time" }),
  },
  { title: "MessageOut" },
);

export const MessageAttemptOut = Type.Object(
  {
    id: Type.String(),
    msgId: Type.String(),
    endpointId: Type.String(),
    url: Type.String(),
    response: Type.String(),
    responseStatusCode: Type.Integer(),
    responseDurationMs: Type.Integer(),
    status: Type.Integer({ description: "0 success, 1 pending, 2 fail, 3 sending" }),
    statusText: Type.String(),
    triggerType: Type.Integer({ description: "0 scheduled, 1 manual" }),
    errorCode: Type.Optional(Nullable(Type.String())),
    timestamp: Type.String({ format: "date-time" }),
  },
  { title: "MessageAttemptOut" },
);

export const RecoverIn = Type.Object(
  { since: Type.String({ format: "date-time" }), until: Opt(Type.String({ format: "date-time" })) },
  { title: "RecoverIn", additionalProperties: false },
);
export const RecoverOut = Type.Object(
  { id: Type.String(), status: Type.String(), task: Type.String(), updatedAt: Type.String() },
  { title: "RecoverOut" },
);

export const HttpErrorOut = Type.Object(
  { code: Type.String(), detail: Type.String() },
  { title: "HttpErrorOut" },
);

export function ListResponse(item: TSchema) {
  return Type.Object({
    data: Type.Array(item),
    iterator: Nullable(Type.String()),
    prevIterator: Type.Optional(Nullable(Type.String())),
    done: Type.Boolean(),
  });
}

// Inbound sources (Pigeon extension) ----------------------------------------------------------

const ProviderNameSchema = Type.Union(
  PROVIDER_NAMES.map((name) => Type.Literal(name)),
  { description: "How the sender signs its requests." },
);

/** Exactly one of the two; the route says which is missing when neither or both are given. */
const FieldRefSchema = Type.Object(
  {
    pointer: Type.Optional(
      Type.String({ maxLength: 1024, description: "RFC 6901 pointer into the JSON body" }),
    ),
    header: Type.Optional(Type.String({ maxLength: 256, description: "Request header name" })),
  },
  { additionalProperties: false },
);

const GenericHmacSchema = Type.Object(
  {
    header: Type.String({ minLength: 1, maxLength: 256 }),
    algorithm: Type.Union([Type.Literal("sha1"), Type.Literal("sha256"), Type.Literal("sha512")]),
    encoding: Type.Union([Type.Literal("hex"), Type.Literal("base64")]),
    prefix: Type.Optional(Type.String({ maxLength: 64 })),
    signed: Type.Union([Type.Literal("body"), Type.Literal("timestamp+body")]),
    timestampHeader: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    separator: Type.Optional(Type.String({ maxLength: 16 })),
    eventIdHeader: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    eventIdPointer: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);

export const SourceOptionsSchema = Type.Object(
  {
    toleranceSec: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 604800,
        description: "Signed-timestamp tolerance; default 300, 0 off.",
      }),
    ),
    publicUrl: Type.Optional(
      Type.String({ format: "uri", description: "URL the provider calls (Twilio, Square)." }),
    ),
    generic: Type.Optional(GenericHmacSchema),
    apiKeyHeader: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    verifyToken: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    allowSha1: Type.Optional(Type.Boolean()),
    eventIdHeader: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    eventIdPointer: Type.Optional(Type.String({ maxLength: 1024 })),
    eventType: Type.Optional(FieldRefSchema),
    orderingKey: Type.Optional(FieldRefSchema),
    eventTime: Type.Optional(FieldRefSchema),
    staleAction: Type.Optional(Type.Union([Type.Literal("skip"), Type.Literal("deliver")])),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: "Default 8." })),
    ratePerSecond: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000 })),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: "Default 8." })),
    retryBaseMs: Type.Optional(
      Type.Integer({ minimum: 10, maximum: 86400000, description: "Default 1000." }),
    ),
    retryMaxMs: Type.Optional(
      Type.Integer({ minimum: 10, maximum: 604800000, description: "Default 600000." }),
    ),
    handlerTimeoutMs: Type.Optional(
      Type.Integer({ minimum: 100, maximum: 900000, description: "Default 30000." }),
    ),
    forward: Type.Optional(
      Type.Object(
        {
          appId: Text({ minLength: 1, maxLength: 256 }),
          eventType: Type.Optional(EventTypeName),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { title: "SourceOptions", additionalProperties: false },
);

export const SourceIn = Type.Object(
  {
    uid: Opt(Uid),
    name: Text({ minLength: 1, maxLength: 256 }),
    provider: ProviderNameSchema,
    secrets: Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), {
      maxItems: 16,
      description: "Every secret that may sign (several during a rotation). Empty only for provider none.",
    }),
    options: Opt(SourceOptionsSchema),
  },
  { title: "SourceIn", additionalProperties: false },
);

export const SourcePatch = Type.Partial(SourceIn, { title: "SourcePatch", additionalProperties: false });

const InboxStatusSchema = Type.Union(
  ["received", "processing", "processed", "failed", "duplicate", "stale"].map((s) => Type.Literal(s)),
);

export const SourceStatsOut = Type.Object(
  {
    received: Type.Integer(),
    processing: Type.Integer(),
    processed: Type.Integer(),
    failed: Type.Integer(),
    duplicate: Type.Integer(),
    stale: Type.Integer(),
    verificationFailures: Type.Integer(),
    lastVerificationFailureAt: Nullable(Type.String({ format: "date-time" })),
    lastVerificationFailureCode: Nullable(Type.String()),
  },
  { title: "SourceStats" },
);

export const SourceOut = Type.Object(
  {
    id: Type.String(),
    uid: Nullable(Type.String()),
    name: Type.String(),
    provider: Type.String(),
    ingestUrl: Type.String({ description: "Give this URL to the provider." }),
    ingestPath: Type.String(),
    secretCount: Type.Integer({ description: "Secrets are write-only; this is how many are set." }),
    options: SourceOptionsSchema,
    stats: SourceStatsOut,
    createdAt: Type.String({ format: "date-time" }),
    updatedAt: Type.String({ format: "date-time" }),
  },
  { title: "SourceOut" },
);

export const InboxItemOut = Type.Object(
  {
    id: Type.String(),
    sourceId: Type.String(),
    status: InboxStatusSchema,
    eventId: Nullable(Type.String()),
    eventType: Nullable(Type.String()),
    eventTime: Nullable(Type.String({ format: "date-time" })),
    orderingKey: Nullable(Type.String()),
    duplicateOf: Nullable(Type.String()),
    method: Type.String(),
    path: Type.String(),
    query: Type.String(),
    headers: Type.Record(Type.String(), Type.String()),
    contentType: Nullable(Type.String()),
    bodyKind: Type.Union([
      Type.Literal("json"),
      Type.Literal("form"),
      Type.Literal("xml"),
      Type.Literal("other"),
    ]),
    bodySize: Type.Integer(),
    body: Type.Optional(Nullable(Type.String({ description: "The body as text when it is UTF-8." }))),
    bodyBase64: Type.Optional(Nullable(Type.String({ description: "The body when it is not UTF-8." }))),
    attempts: Type.Integer(),
    nextAttemptAt: Nullable(Type.String({ format: "date-time" })),
    lastError: Nullable(Type.String()),
    stale: Type.Boolean(),
    receivedAt: Type.String({ format: "date-time" }),
    processedAt: Nullable(Type.String({ format: "date-time" })),
  },
  { title: "InboxItemOut" },
);
