// What users would pick instead (1): Node's http + the `ws` package, broadcasting in a loop.
import http from "node:http";
import { randomUUID } from "node:crypto";
import { WebSocketServer } from "ws";

let seq = 0;
const server = http.createServer((req, res) => {
  if (req.url === "/publish" && req.method === "POST") {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const { text } = JSON.parse(body);
      seq++;
      const frame = JSON.stringify({ type: "message.created", seq, message: { id: randomUUID(), seq, sender_id: "user:bench", content_preview: text, created_at: new Date().toISOString() } });
      for (const client of wss.clients) if (client.readyState === 1) client.send(frame);
      res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ seq }));
    });
    return;
  }
  res.end("ok");
});
const wss = new WebSocketServer({ server, path: "/ws" });
server.listen(Number(process.env.PORT), "127.0.0.1");
