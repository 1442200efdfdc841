import { type TSchema, Type } from "@sinclair/typebox";

/**
 * The wire schemas, named as in Svix's OpenAPI document. Requests are validated with them and the
 * OpenAPI document at /api/v1/openapi.json is generated from them, so the two cannot drift.
 * The svix 1.x client sends `filterTypes`/`rateLimit` where the spec says `eventTypes`/`throttleRate`:
 * both are accepted and both are returned.
 */

const Uid = Type.String({
  minLength: 1,
  maxLength: 256,
  pattern: "^[a-zA-Z0-9\\-_.]+$",
  description: "Your own identifier; usable wherever the id is.",
});
const Metadata = Type.Record(Type.String(), Type.String());
const RateLimit = Type.Integer({ minimum: 1, maximum: 65535, description: "Requests per second." });
const EventTypeName = Type.String({ minLength: 1, maxLength: 256, pattern: "^[a-zA-Z0-9\\-_.*]+$" });
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
    name: Type.String({ minLength: 1, maxLength: 256 }),
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
    description: Type.String({ maxLength: 4096 }),
    archived: Type.Optional(Type.Boolean()),
    deprecated: Type.Optional(Type.Boolean()),
    featureFlag: Opt(Type.String({ maxLength: 256 })),
    featureFlags: Opt(Type.Array(Type.String())),
    groupName: Opt(Type.String()),
    schemas: Opt(Type.Record(Type.String(), Type.Any())),
  },
  { title: "EventTypeIn", additionalProperties: false },
);

export const EventTypeUpdate = Type.Object(
  {
    description: Type.String({ maxLength: 4096 }),
    archived: Type.Optional(Type.Boolean()),
    deprecated: Type.Optional(Type.Boolean()),
    featureFlag: Opt(Type.String({ maxLength: 256 })),
    featureFlags: Opt(Type.Array(Type.String())),
    groupName: Opt(Type.String()),
    schemas: Opt(Type.Record(Type.String(), Type.Any())),
  },
  { title: "EventTypeUpdate", additionalProperties: false },
);

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
  description: Type.Optional(Type.String({ maxLength: 4096 })),
  uid: Opt(Uid),
  version: Opt(Type.Integer({ minimum: 1 })),
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
    eventId: Opt(Type.String({ minLength: 1, maxLength: 256 })),
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
