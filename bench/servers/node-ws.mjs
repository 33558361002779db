// What users would pick instead (1): Node's http + the `ws` package, each channel a Set of
// sockets (/ws?channel=<name>), POST /publish {channel, text} broadcasting in a loop to that Set.
import http from "node:http";
import { randomUUID } from "node:crypto";
import { WebSocketServer } from "ws";

const channels = new Map();
const seqs = new Map();
const server = http.createServer((req, res) => {
  if (req.url === "/publish" && req.method === "POST") {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const { channel = "channel", text } = JSON.parse(body);
      const seq = (seqs.get(channel) ?? 0) + 1;
      seqs.set(channel, seq);
      const frame = JSON.stringify({ type: "message.created", seq, message: { id: randomUUID(), seq, sender_id: "user:bench", content_preview: text, created_at: new Date().toISOString() } });
      for (const client of channels.get(channel) ?? []) if (client.readyState === 1) client.send(frame);
      res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ seq }));
    });
    return;
  }
  res.end("ok");
});
const wss = new WebSocketServer({ server, path: "/ws" });
wss.on("connection", (socket, req) => {
  const channel = new URL(req.url, "http://localhost").searchParams.get("channel") ?? "channel";
  let sockets = channels.get(channel);
  if (!sockets) channels.set(channel, (sockets = new Set()));
  sockets.add(socket);
  socket.on("close", () => {
    sockets.delete(socket);
    if (sockets.size === 0 && channels.get(channel) === sockets) channels.delete(channel);
  });
});
server.listen(Number(process.env.PORT), "127.0.0.1");
