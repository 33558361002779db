import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { matrixAdapters } from "../helpers/adapters.ts";
import { MatrixError, parseMxcUri, type MatrixBackend } from "../../src/matrix/port.ts";

/** The media part of the Matrix port's contract, for every adapter. */
const adapters = matrixAdapters();

for (const adapter of adapters) {
  describe(`Matrix media contract: ${adapter.name}`, () => {
    let m: MatrixBackend;
    let close: () => Promise<void>;
    const alice = `@user-alice:${adapter.serverName}`;

    beforeAll(async () => {
      ({ backend: m, close } = await adapter.open());
      await m.ensureUser(alice);
    }, 60000);
    afterAll(() => close?.(), 60000);

    test("uploadMedia gives an mxc URI on the server; downloadMedia returns the same bytes and type", async () => {
      const bytes = new Uint8Array(256 * 1024).map((_, i) => (i * 7) % 256);
      const { contentUri } = await m.uploadMedia(alice, bytes, "application/pdf", "report.pdf");
      expect(parseMxcUri(contentUri)?.serverName).toBe(adapter.serverName);
      const media = await m.downloadMedia(contentUri);
      expect(media.contentType).toBe("application/pdf");
      expect(media.size).toBe(bytes.byteLength);
      expect(new Uint8Array(await new Response(media.body).arrayBuffer())).toEqual(bytes);
    });

    test("each upload is a new media id, even for the same bytes", async () => {
      const bytes = new TextEncoder().encode("same");
      const a = await m.uploadMedia(alice, bytes, "text/plain", null);
      const b = await m.uploadMedia(alice, bytes, "text/plain", null);
      expect(a.contentUri).not.toBe(b.contentUri);
    });

    test("unknown media and non-mxc URIs are M_NOT_FOUND", async () => {
      for (const uri of [`mxc://${adapter.serverName}/doesnotexist${Date.now()}`, "https://example.org/x", "mxc://bad host/x"]) {
        const err = await m.downloadMedia(uri).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(MatrixError);
        expect((err as MatrixError).errcode).toBe("M_NOT_FOUND");
      }
    });
  });
}
