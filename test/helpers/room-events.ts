import { RoomEvent, type MatrixClient, type MatrixEvent as SdkEvent } from "matrix-js-sdk";

/** Resolves with the first timeline event in `roomId` the Matrix client sees that matches. */
export function nextRoomEvent(client: MatrixClient, roomId: string, pred: (e: SdkEvent) => boolean, timeoutMs = 20000): Promise<SdkEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off(RoomEvent.Timeline, onEvent);
      reject(new Error("the Matrix client saw no matching event"));
    }, timeoutMs);
    const onEvent = (e: SdkEvent) => {
      if (e.getRoomId() === roomId && pred(e)) {
        clearTimeout(timer);
        client.off(RoomEvent.Timeline, onEvent);
        resolve(e);
      }
    };
    client.on(RoomEvent.Timeline, onEvent);
  });
}
