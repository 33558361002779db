// What users would pick instead (2): Socket.IO on Node, one room per channel: a client that
// connects with ?channel=<name> joins that room, POST /publish {channel, text} emits to the room.
import http from "node:http";
import { randomUUID } from "node:crypto";
import { Server } from "socket.io";

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
      io.to(channel).emit("frame", frame);
      res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ seq }));
    });
    return;
  }
  if (req.url?.startsWith("/socket.io")) return;
  res.end("ok");
});
const io = new Server(server, { transports: ["websocket"] });
io.on("connection", (socket) => {
  const channel = socket.handshake.query.channel;
  socket.join(typeof channel === "string" ? channel : "channel");
});
server.listen(Number(process.env.PORT), "127.0.0.1");
