import type { LoadResult } from "../lib/load.ts";
import { closedLoop } from "../lib/load.ts";
import { sendLoad } from "../lib/send-load.ts";
import { BENCH_USER, type Service } from "../lib/service.ts";
import { knob, median, round } from "../lib/stats.ts";

export interface RoomsParams {
  rooms: number;
  sendersPerRoom: number[];
  seconds: number;
  rounds: number;
}

export function roomsPlan(): { params: RoomsParams; estimateSeconds: number } {
  const params = { rooms: knob("BENCH_SEND_SYNAPSE_ROOMS", 10), sendersPerRoom: [1, 4], seconds: knob("BENCH_SEND_SYNAPSE_ROOMS_SECONDS", 4), rounds: knob("BENCH_ROUNDS", 2) };
  // The plain client once and the service once per round and senders-per-room cell, plus joining the rooms.
  return { params, estimateSeconds: Math.round(5 + params.rounds * params.sendersPerRoom.length * 2 * (params.seconds + 0.2)) };
}

/**
 * Issue 15, target 5: sends through Synapse over several rooms at once, against a plain client
 * sending the same messages to the same rooms as the same user (the application service's
 * token with `user_id=`, one PUT at a time per room, as Matrix order requires, rooms in
 * parallel). Alternating rounds, median kept, as the other send cells.
 */
export async function roomsCase(service: Service, matrix: { url: string; asToken: string; serverName: string }) {
  const { rooms, sendersPerRoom, seconds, rounds } = roomsPlan().params;
  const headers = { "x-user-id": BENCH_USER };
  const channels: string[] = [];
  const roomIds: string[] = [];
  for (let i = 0; i < rooms; i++) {
    const id = await service.createChannel();
    const channel = (await (await fetch(`${service.url}/api/messaging/channels/${id}`, { headers })).json()) as { matrix_room_id: string };
    channels.push(id);
    roomIds.push(channel.matrix_room_id);
  }
  // The first write joins the sender to each public channel's room; the plain client then sends as that member.
  for (const id of channels) {
    const res = await fetch(`${service.url}/api/messaging/channels/${id}/messages`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify({ text: "join" }) });
    if (res.status !== 201) throw new Error(`first send answered ${res.status}`);
  }
  const mxid = `@user-bench:${matrix.serverName}`;
  const plain = (secs: number) =>
    closedLoop(rooms, { seconds: secs }, async (w, i) => {
      const txn = `plain-${Date.now()}-${w}-${i}`;
      const url = `${matrix.url}/_matrix/client/v3/rooms/${encodeURIComponent(roomIds[w]!)}/send/m.room.message/${txn}?user_id=${encodeURIComponent(mxid)}`;
      const res = await fetch(url, { method: "PUT", headers: { authorization: `Bearer ${matrix.asToken}`, "content-type": "application/json" }, body: JSON.stringify({ msgtype: "m.text", body: `plain message ${i}` }) });
      await res.arrayBuffer();
      return res.ok || `${res.status}`;
    });
  await plain(0.5);
  await sendLoad(service.url, channels, rooms, 0.5);
  const rows: unknown[] = [];
  for (const perRoom of sendersPerRoom) {
    const svc: LoadResult[] = [];
    const base: LoadResult[] = [];
    for (let r = 0; r < rounds; r++) {
      svc.push(await sendLoad(service.url, channels, rooms * perRoom, seconds));
      base.push(await plain(seconds));
    }
    const pick = (rs: LoadResult[]) => rs.find((x) => x.perSecond === median(rs.map((y) => y.perSecond)))!;
    const s = pick(svc);
    const b = pick(base);
    const row = {
      rooms,
      senders: rooms * perRoom,
      service: { per_second: s.perSecond, p50_ms: s.latency.p50, p99_ms: s.latency.p99, errors: s.errors, first_error: s.firstError },
      plain_client: { per_second: b.perSecond, p50_ms: b.latency.p50, p99_ms: b.latency.p99, errors: b.errors, first_error: b.firstError },
      ratio: round(s.perSecond / b.perSecond, 3),
      rounds: { service: svc.map((x) => x.perSecond), plain_client: base.map((x) => x.perSecond) },
    };
    console.log(
      `send-synapse rooms=${rooms} senders=${rooms * perRoom}: service ${s.perSecond}/s p50 ${s.latency.p50} | plain client (${rooms} rooms, one PUT at a time each) ${b.perSecond}/s p50 ${b.latency.p50} | ratio ${row.ratio}${s.errors ? ` errors ${s.errors} ${s.firstError}` : ""}`,
    );
    rows.push(row);
  }
  return { params: { rooms, senders_per_room: sendersPerRoom, seconds, rounds }, rows };
}
