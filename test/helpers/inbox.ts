import { join } from "node:path";
import { newId } from "../../src/core/ids.js";
import { openSqliteInbox } from "../../src/inbound/store/open-inbox-store.js";
import type { SqliteInboxStore } from "../../src/inbound/store/sqlite-inbox-store.js";
import type { NewInboxItem, Source } from "../../src/inbound/types.js";

/** Inbox fixtures shared by the inbox store tests. */

export const T0 = 1_800_000_000_000;

export function testSource(id: string, fields: Partial<Source> = {}): Source {
  return {
    id,
    uid: null,
    name: id,
    provider: "none",
    secrets: [],
    options: {},
    createdAt: T0,
    updatedAt: T0,
    ...fields,
  };
}

export function testItem(sourceId: string, fields: Partial<NewInboxItem> = {}): NewInboxItem {
  return {
    id: newId("in", T0),
    sourceId,
    eventId: null,
    eventType: null,
    eventTime: null,
    orderingKey: null,
    method: "POST",
    path: "/in/x",
    query: "",
    headers: { "content-type": "application/json" },
    body: Buffer.from("{}"),
    contentType: "application/json",
    bodyKind: "json",
    receivedAt: T0,
    ...fields,
  };
}

/** The inbox of a fresh file in `dir`, on its own connection, as the engine opens it. */
export function sqliteInboxIn(dir: string): SqliteInboxStore {
  return openSqliteInbox(join(dir, "pigeon.db"));
}
