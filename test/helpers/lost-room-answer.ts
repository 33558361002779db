import { MatrixError, type MatrixBackend } from "../../src/matrix/port.ts";

/**
 * Wraps a Matrix backend so that, when armed, the next createRoom makes its room and then loses
 * the answer (as a crash or a dropped connection would): the service sees M_UNREACHABLE.
 */
export class LostRoomAnswer {
  private armed = false;
  /** The room whose answer was lost last. */
  lost: { roomId: string; alias: string } | null = null;

  armNext() {
    this.armed = true;
    this.lost = null;
  }

  wrap = (inner: MatrixBackend): MatrixBackend => {
    const self = this;
    return new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === "createRoom") {
          return async (req: Parameters<MatrixBackend["createRoom"]>[0]) => {
            const room = await target.createRoom(req);
            if (!self.armed) return room;
            self.armed = false;
            self.lost = room;
            throw new MatrixError("M_UNREACHABLE", "the connection dropped before the answer", 502);
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  };
}
