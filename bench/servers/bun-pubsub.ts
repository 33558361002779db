/**
 * The limit for fan-out: Bun.serve's built-in pub/sub (uWS topics). A socket on
 * /ws?channel=<name> subscribes to that channel's topic; POST /publish {channel, text}
 * broadcasts a frame shaped like the service's message.created to that channel's subscribers.
 */
const seqs = new Map<string, number>();
const server = Bun.serve({
  port: Number(process.env.PORT),
  hostname: "127.0.0.1",
  async fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/ws") {
      const channel = url.searchParams.get("channel") ?? "channel";
      return srv.upgrade(req, { data: { channel } }) ? undefined : new Response("upgrade failed", { status: 400 });
    }
    if (url.pathname === "/publish" && req.method === "POST") {
      const { channel = "channel", text } = (await req.json()) as { channel?: string; text: string };
      const seq = (seqs.get(channel) ?? 0) + 1;
      seqs.set(channel, seq);
      const frame = JSON.stringify({ type: "message.created", seq, message: { id: crypto.randomUUID(), seq, sender_id: "user:bench", content_preview: text, created_at: new Date().toISOString() } });
      server.publish(channel, frame);
      return Response.json({ seq }, { status: 201 });
    }
    return new Response("ok");
  },
  websocket: {
    data: {} as { channel: string },
    open(ws) {
      ws.subscribe(ws.data.channel);
    },
    message() {},
  },
});
