import { describe, expect, it } from "vitest";
import { encodeDelivery, flattenForm, xmlElementName } from "../../src/delivery/body-format.js";

const payload = {
  type: "employee.created",
  data: { name: "Zoë & Co <HR>", id: 7, active: true, manager: null, tags: ["a", "b"], skip: undefined },
};

describe("json", () => {
  it("sends the stored bytes exactly when rawJson is given", () => {
    const rawJson = '{ "b":1,  "a":"é" }';
    const out = encodeDelivery({
      url: "http://h.invalid/x",
      method: "POST",
      format: "json",
      payload: {},
      rawJson,
    });
    expect(out).toEqual({
      url: "http://h.invalid/x",
      body: Buffer.from(rawJson),
      contentType: "application/json",
    });
  });

  it("serialises the payload otherwise", () => {
    const out = encodeDelivery({ url: "http://h.invalid/x", method: "PUT", format: "json", payload });
    expect(out.body?.toString()).toBe(JSON.stringify(payload));
    expect(out.contentType).toBe("application/json");
  });
});

describe("form", () => {
  it("flattens nested objects and arrays with bracket notation", () => {
    expect(flattenForm(payload)).toEqual([
      ["type", "employee.created"],
      ["data[name]", "Zoë & Co <HR>"],
      ["data[id]", "7"],
      ["data[active]", "true"],
      ["data[manager]", ""],
      ["data[tags][0]", "a"],
      ["data[tags][1]", "b"],
    ]);
    expect(flattenForm([{ x: 1 }])).toEqual([["0[x]", "1"]]);
    expect(flattenForm("hi")).toEqual([["payload", "hi"]]);
  });

  it("encodes as application/x-www-form-urlencoded that round-trips", () => {
    const out = encodeDelivery({ url: "http://h.invalid/x", method: "POST", format: "form", payload });
    expect(out.contentType).toBe("application/x-www-form-urlencoded");
    const parsed = new URLSearchParams(out.body?.toString());
    expect(parsed.get("data[name]")).toBe("Zoë & Co <HR>");
    expect(parsed.getAll("data[tags][1]")).toEqual(["b"]);
    expect(out.body?.toString()).toContain("type=employee.created");
  });

  it("parses rawJson when only the stored text is given", () => {
    const out = encodeDelivery({
      url: "http://h.invalid/",
      method: "POST",
      format: "form",
      payload: undefined,
      rawJson: '{"a":{"b":2}}',
    });
    expect(new URLSearchParams(out.body?.toString()).get("a[b]")).toBe("2");
  });
});

describe("xml", () => {
  it("renders keys as elements, arrays as repeated <item>, with escaped text", () => {
    const out = encodeDelivery({ url: "http://h.invalid/x", method: "POST", format: "xml", payload });
    expect(out.contentType).toBe("application/xml");
    expect(out.body?.toString()).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><webhook><type>employee.created</type><data>' +
        "<name>Zoë &amp; Co &lt;HR&gt;</name><id>7</id><active>true</active><manager/>" +
        "<tags><item>a</item><item>b</item></tags></data></webhook>",
    );
  });

  it("sanitises invalid element names and strips characters XML cannot carry", () => {
    expect(xmlElementName("first name")).toBe("first_name");
    expect(xmlElementName("1st")).toBe("_1st");
    expect(xmlElementName("-x")).toBe("_-x");
    expect(xmlElementName("a:b")).toBe("a_b");
    expect(xmlElementName("xmlThing")).toBe("_xmlThing");
    expect(xmlElementName("")).toBe("_");
    expect(xmlElementName("名前")).toBe("名前");
    const out = encodeDelivery({
      url: "http://h.invalid/",
      method: "POST",
      format: "xml",
      payload: { "<evil>": "a\u0000b\u0007c", list: [[1, 2], { k: "v" }] },
    });
    expect(out.body?.toString()).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><webhook><_evil_>abc</_evil_>' +
        "<list><item><item>1</item><item>2</item></item><item><k>v</k></item></list></webhook>",
    );
  });
});

describe("GET", () => {
  it("sends no body and merges the flattened payload into the existing query string", () => {
    const out = encodeDelivery({
      url: "http://h.invalid/hook?token=abc&x=1#frag",
      method: "GET",
      format: "json",
      payload: { type: "t", data: { id: 7, tags: ["a"] } },
    });
    expect(out.body).toBeUndefined();
    expect(out.contentType).toBeUndefined();
    const url = new URL(out.url);
    expect(url.pathname).toBe("/hook");
    expect([...url.searchParams]).toEqual([
      ["token", "abc"],
      ["x", "1"],
      ["type", "t"],
      ["data[id]", "7"],
      ["data[tags][0]", "a"],
    ]);
  });

  it("uses rawJson when no parsed payload is given, for every format", () => {
    for (const format of ["json", "form", "xml"] as const) {
      const out = encodeDelivery({
        url: "http://h.invalid/",
        method: "GET",
        format,
        payload: undefined,
        rawJson: '{"a":1}',
      });
      expect(new URL(out.url).searchParams.get("a")).toBe("1");
    }
  });

  it("leaves an unparseable URL for the sender to report", () => {
    const out = encodeDelivery({ url: "not a url", method: "GET", format: "json", payload: { a: 1 } });
    expect(out).toEqual({ url: "not a url" });
  });
});
