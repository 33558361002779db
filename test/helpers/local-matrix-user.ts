import type { TestServer } from "./server.ts";

/**
 * A Matrix user outside DAARION's namespace, joined to `roomId` on the local backend, writing
 * straight into the homeserver as a Matrix client would. Returns its send function.
 */
export async function localMatrixUser(server: TestServer, roomId: string, localpart = "carol") {
  const user = `@${localpart}${Date.now().toString(36)}:daarion.city`;
  const { matrix } = server.app.deps;
  await matrix.ensureUser(user);
  await matrix.join(roomId, user);
  return (content: Record<string, unknown>) => matrix.sendEvent(roomId, user, "m.room.message", content, crypto.randomUUID()).then((r) => r.eventId);
}
