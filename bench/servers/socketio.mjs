// What users would pick instead (2): Socket.IO on Node, io.emit to every connected client.
import http from "node:http";
import { randomUUID } from "node:crypto";
import { Server } from "socket.io";

let seq = 0;
const server = http.createServer((req, res) => {
  if (req.url === "/publish" && req.method === "POST") {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const { text } = JSON.parse(body);
      seq++;
      const frame = JSON.stringify({ type: "message.created", seq, message: { id: randomUUID(), seq, sender_id: "user:bench", content_preview: text, created_at: new Date().toISOString() } });
      io.emit("frame", frame);
      res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ seq }));
    });
    return;
  }
  if (req.url?.startsWith("/socket.io")) return;
  res.end("ok");
});
const io = new Server(server, { transports: ["websocket"] });
server.listen(Number(process.env.PORT), "127.0.0.1");
