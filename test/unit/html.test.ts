import { describe, expect, test } from "bun:test";
import { safeFormattedBody, sanitizeMatrixHtml, withSafeHtml } from "../../src/domain/html.ts";

describe("the Matrix HTML allow-list", () => {
  test("allowed tags and attributes stay; scripts, handlers and javascript: links go", () => {
    expect(sanitizeMatrixHtml('<p>hi <a href="https://example.org">there</a></p>')).toBe('<p>hi <a href="https://example.org">there</a></p>');
    expect(sanitizeMatrixHtml('<b onclick="x()">bold</b><script>alert(1)</script>')).toBe("<b>bold</b>");
    expect(sanitizeMatrixHtml('<a href="javascript:alert(1)">x</a>')).toBe("<a>x</a>");
  });

  test("only mxc:// images and 6-digit hex colours are kept", () => {
    expect(sanitizeMatrixHtml('<img src="mxc://daarion.city/abc" alt="a">')).toBe('<img src="mxc://daarion.city/abc" alt="a" />');
    expect(sanitizeMatrixHtml('<img src="https://example.org/x.png">')).toBe("");
    expect(sanitizeMatrixHtml('<span data-mx-color="#ff00AA">a</span><span data-mx-color="red">b</span>')).toBe(
      '<span data-mx-color="#ff00AA">a</span><span>b</span>',
    );
  });

  test("nothing left is no formatted body; an edit's new content is sanitised too", () => {
    expect(safeFormattedBody("<script>x</script>")).toBeNull();
    expect(safeFormattedBody(undefined)).toBeNull();
    const safe = withSafeHtml({ body: "x", formatted_body: "<i>x</i><script></script>", "m.new_content": { formatted_body: "<b onmouseover=y>z</b>" } });
    expect(safe).toMatchObject({ formatted_body: "<i>x</i>", "m.new_content": { formatted_body: "<b>z</b>" } });
  });
});
