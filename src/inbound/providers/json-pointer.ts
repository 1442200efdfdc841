/**
 * RFC 6901 JSON Pointer evaluation.
 *
 * Accepts the JSON string form (`/a/b~1c`) and the URI fragment form (`#/a/b%20c`). Only own
 * properties are followed, so `/__proto__` or `/constructor` never reach Object.prototype.
 */

/** Splits a pointer into unescaped reference tokens; throws TypeError on invalid syntax. */
export function parsePointer(pointer: string): string[] {
  let text = pointer;
  if (text.startsWith("#")) {
    try {
      text = decodeURIComponent(text.slice(1));
    } catch {
      throw new TypeError(`invalid JSON pointer fragment: ${JSON.stringify(pointer)}`);
    }
  }
  if (text === "") return [];
  if (!text.startsWith("/")) {
    throw new TypeError(`invalid JSON pointer (must be empty or start with "/"): ${JSON.stringify(pointer)}`);
  }
  return text
    .slice(1)
    .split("/")
    .map((token) => {
      if (/~(?![01])/.test(token)) {
        throw new TypeError(`invalid JSON pointer escape in ${JSON.stringify(pointer)}`);
      }
      // Order matters: "~01" must become "~1", not "/".
      return token.replace(/~1/g, "/").replace(/~0/g, "~");
    });
}

/** True when `pointer` is a syntactically valid JSON pointer. */
export function isValidPointer(pointer: string): boolean {
  try {
    parsePointer(pointer);
    return true;
  } catch {
    return false;
  }
}

/**
 * The value `pointer` refers to in `doc`, or undefined when it refers to nothing.
 * Throws TypeError when the pointer itself is malformed.
 */
export function getByPointer(doc: unknown, pointer: string): unknown {
  let current: unknown = doc;
  for (const token of parsePointer(pointer)) {
    if (Array.isArray(current)) {
      if (!/^(0|[1-9]\d*)$/.test(token)) return undefined;
      const index = Number(token);
      if (index >= current.length) return undefined;
      current = current[index];
    } else if (current !== null && typeof current === "object") {
      if (!Object.hasOwn(current, token)) return undefined;
      current = (current as Record<string, unknown>)[token];
    } else {
      return undefined;
    }
  }
  return current;
}
