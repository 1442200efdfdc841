/**
 * Turns a message payload into the bytes (or query string) an endpoint asked for. JSON is the
 * default and sends the stored bytes untouched; form and XML exist for receivers that cannot
 * parse JSON (legacy PHP handlers, enterprise middleware). GET endpoints get the payload in the
 * query string, because GET requests with bodies are dropped by many proxies.
 */
export type BodyFormat = "json" | "form" | "xml";
export type HttpMethod = "POST" | "PUT" | "GET";

export interface EncodeDeliveryOptions {
  url: string;
  method: HttpMethod;
  format: BodyFormat;
  payload: unknown;
  /** The payload exactly as stored; JSON bodies send these bytes so signatures match the record. */
  rawJson?: string;
}

export interface EncodedDelivery {
  url: string;
  body?: Buffer;
  contentType?: string;
}

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';

/**
 * Flatten nested values into [key, value] pairs with bracket notation, as PHP, Rails and the
 * `qs` package parse them: {data: {name: "x"}, a: [1]} → data[name]=x, a[0]=1.
 * null becomes an empty value; undefined, functions and empty containers are left out.
 */
export function flattenForm(payload: unknown): [string, string][] {
  const pairs: [string, string][] = [];
  const walk = (value: unknown, key: string): void => {
    if (value === undefined || typeof value === "function" || typeof value === "symbol") return;
    if (value === null) {
      pairs.push([key, ""]);
    } else if (value instanceof Date) {
      pairs.push([key, value.toISOString()]);
    } else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) walk(value[i], `${key}[${i}]`);
    } else if (typeof value === "object") {
      for (const [name, item] of Object.entries(value)) walk(item, `${key}[${name}]`);
    } else {
      pairs.push([key, String(value)]);
    }
  };
  if (Array.isArray(payload)) {
    for (let i = 0; i < payload.length; i++) walk(payload[i], String(i));
  } else if (payload !== null && typeof payload === "object" && !(payload instanceof Date)) {
    for (const [name, item] of Object.entries(payload)) walk(item, name);
  } else {
    // A bare scalar has no key of its own.
    walk(payload, "payload");
  }
  return pairs;
}

export function encodeForm(payload: unknown): string {
  return new URLSearchParams(flattenForm(payload)).toString();
}

// XML 1.0 forbids most C0 controls, lone surrogates and U+FFFE/U+FFFF even when escaped.
const INVALID_XML_CHARS = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

export function escapeXmlText(text: string): string {
  return text
    .replace(INVALID_XML_CHARS, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");
}

const NAME_CHAR = /[^\p{L}\p{N}_.-]/gu;
const NAME_START = /^[\p{L}_]/u;

/**
 * JSON keys may be anything; XML element names may not. Characters outside letters, digits,
 * "_", "-", "." become "_" (":" too, to stay clear of namespaces), and a name that would start
 * with a digit, "-", ".", or the reserved "xml" gets a leading "_".
 */
export function xmlElementName(key: string): string {
  const name = key.replace(NAME_CHAR, "_");
  if (!NAME_START.test(name) || /^xml/i.test(name)) return `_${name}`;
  return name;
}

function xmlValue(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (value instanceof Date) return escapeXmlText(value.toISOString());
  if (Array.isArray(value)) {
    let out = "";
    for (const item of value) out += item === undefined ? "" : xmlElement("item", item);
    return out;
  }
  if (typeof value === "object") {
    let out = "";
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) out += xmlElement(xmlElementName(key), item);
    }
    return out;
  }
  return escapeXmlText(String(value));
}

function xmlElement(name: string, value: unknown): string {
  const inner = xmlValue(value);
  return inner === "" ? `<${name}/>` : `<${name}>${inner}</${name}>`;
}

export function encodeXml(payload: unknown): string {
  return `${XML_DECLARATION}${xmlElement("webhook", payload)}`;
}

/** Append the flattened payload to the URL's existing query parameters (existing ones stay first). */
function withQuery(url: string, payload: unknown): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Leave it to the sender, which reports an unparseable URL as the "invalid_url" failure.
    return url;
  }
  for (const [key, value] of flattenForm(payload)) parsed.searchParams.append(key, value);
  return parsed.toString();
}

export function encodeDelivery(opts: EncodeDeliveryOptions): EncodedDelivery {
  if (opts.method === "GET") {
    return { url: withQuery(opts.url, payloadOf(opts)) };
  }
  switch (opts.format) {
    case "json":
      return {
        url: opts.url,
        body: Buffer.from(opts.rawJson ?? JSON.stringify(opts.payload) ?? "null", "utf8"),
        contentType: "application/json",
      };
    case "form":
      return {
        url: opts.url,
        body: Buffer.from(encodeForm(payloadOf(opts)), "utf8"),
        contentType: "application/x-www-form-urlencoded",
      };
    case "xml":
      return {
        url: opts.url,
        body: Buffer.from(encodeXml(payloadOf(opts)), "utf8"),
        contentType: "application/xml",
      };
  }
}

/** Form and XML need the parsed value; fall back to the stored JSON when only that was given. */
function payloadOf(opts: EncodeDeliveryOptions): unknown {
  return opts.payload === undefined && opts.rawJson !== undefined ? JSON.parse(opts.rawJson) : opts.payload;
}
