import type { TestServer } from "./server.ts";

/**
 * A Matrix user outside DAARION's namespace, joined to `roomId` on the local backend, writing
 * straight into the homeserver as a Matrix client would: its id, and what it sends and redacts.
 */
export async function localMatrixClient(server: TestServer, roomId: string, localpart = "carol") {
  const user = `@${localpart}${Date.now().toString(36)}:daarion.city`;
  const { matrix } = server.app.deps;
  await matrix.ensureUser(user);
  await matrix.join(roomId, user);
  return {
    id: user,
    send: (content: Record<string, unknown>) => matrix.sendEvent(roomId, user, "m.room.message", content, crypto.randomUUID()).then((r) => r.eventId),
    redact: (eventId: string) => matrix.redact(roomId, user, eventId, crypto.randomUUID()),
  };
}

/** localMatrixClient's send alone. */
export async function localMatrixUser(server: TestServer, roomId: string, localpart = "carol") {
  return (await localMatrixClient(server, roomId, localpart)).send;
}
