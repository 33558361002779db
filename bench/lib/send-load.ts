import { closedLoop } from "./load.ts";

/** Closed-loop sends as user:bench: each of `concurrency` workers posts one message after another, round-robin over `channels`. */
export function sendLoad(url: string, channels: string[], concurrency: number, seconds: number) {
  const headers = { "content-type": "application/json", "x-user-id": "user:bench" };
  return closedLoop(concurrency, { seconds }, async (w, i) => {
    const channel = channels[(w + i) % channels.length]!;
    const res = await fetch(`${url}/api/messaging/channels/${channel}/messages`, {
      method: "POST",
      headers,
      body: JSON.stringify({ text: `bench message ${i}` }),
    });
    await res.arrayBuffer();
    return res.status === 201 || `${res.status}`;
  });
}
