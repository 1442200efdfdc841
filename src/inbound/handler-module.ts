import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** What a handler module exports (default or `register`): it registers handlers on the service. */
export type HandlerModuleSetup<T> = (inbound: T) => void | Promise<void>;

/**
 * Loads a module that registers in-process handlers on a running `pigeon serve`
 * (`PIGEON_INBOUND_HANDLER=/path/to/handlers.js`): its default export, or a named `register`,
 * is called with the inbound service, e.g. `export default (inbound) => inbound.on("*", fn)`.
 */
export async function loadHandlerModule<T>(path: string, inbound: T): Promise<void> {
  const url = pathToFileURL(resolve(path)).href;
  const mod = (await import(url)) as { default?: unknown; register?: unknown };
  const setup = typeof mod.default === "function" ? mod.default : mod.register;
  if (typeof setup !== "function") {
    throw new TypeError(
      `${path}: export a function as default (or as "register") that takes the inbound service and calls inbound.on(eventType, handler)`,
    );
  }
  await (setup as HandlerModuleSetup<T>)(inbound);
}
