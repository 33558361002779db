/**
 * The limit for fan-out: Bun.serve's built-in pub/sub (uWS topics). POST /publish {text}
 * broadcasts a frame shaped like the service's message.created to every subscriber.
 */
let seq = 0;
const server = Bun.serve({
  port: Number(process.env.PORT),
  hostname: "127.0.0.1",
  async fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/ws") return srv.upgrade(req) ? undefined : new Response("upgrade failed", { status: 400 });
    if (url.pathname === "/publish" && req.method === "POST") {
      const { text } = (await req.json()) as { text: string };
      seq++;
      const frame = JSON.stringify({ type: "message.created", seq, message: { id: crypto.randomUUID(), seq, sender_id: "user:bench", content_preview: text, created_at: new Date().toISOString() } });
      server.publish("channel", frame);
      return Response.json({ seq }, { status: 201 });
    }
    return new Response("ok");
  },
  websocket: {
    open(ws) {
      ws.subscribe("channel");
    },
    message() {},
  },
});
