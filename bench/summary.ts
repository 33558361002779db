import { existsSync, readFileSync } from "node:fs";

/**
 * Writes results/<date>-summary.md from the JSON files of that date: the ratios and whether
 * each of the issue's targets is met by these measurements.
 */
export async function writeSummary(outDir: string, date: string) {
  const load = (name: string) => {
    const path = `${outDir}/${date}-${name}.json`;
    return existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : null;
  };
  const out: string[] = [];
  const mark = (ok: boolean) => (ok ? "met" : "**missed**");
  out.push(`# Benchmark summary, ${date}`, "");
  const ran = ["send", "send-synapse", "fanout", "read", "syncback", "memory", "cluster"].map((n) => [n, load(n)] as const).filter(([, r]) => r);
  if (ran.length > 0) {
    const presets = [...new Set(ran.map(([, r]) => r.preset ?? "quick"))].join(", ");
    out.push(`Sizes: BENCH_SIZE=${presets}. Durations: ${ran.map(([n, r]) => `${n} ${Math.round(r.duration_s)} s`).join(", ")}.`, "");
  }
  out.push(
    "Measured on a 2-core VM that may be shared with other work (the host line in each JSON file). The load generator (and the WebSocket",
    "subscriber processes) run **on the same machine** as the servers, so absolute figures are low and noisy; the service and",
    "its baselines run in the same run, alternating round by round, and the ratios are the figures to read.",
    "",
  );
  for (const [file, title] of [["send", "local Matrix backend"], ["send-synapse", "Synapse, end to end"]] as const) {
    const send = load(file);
    if (send) {
      out.push(`## a) Send (${title}, PostgreSQL)`, "", `Rounds per configuration: ${send.params.rounds} of ${send.params.seconds} s each (median kept). Target: service ≥ 70 % of the baseline's messages/s.`, "");
      if (send.rows.length === 0) out.push("No service-against-baseline cells in this run (BENCH_SEND_CHANNELS=0).");
      else out.push("| channels | senders | service msg/s | p50 / p99 ms | baseline msg/s | p50 / p99 ms | ratio | target |", "|---|---|---|---|---|---|---|---|");
      for (const r of send.rows) {
        out.push(`| ${r.channels} | ${r.concurrency} | ${r.service.per_second} | ${r.service.p50_ms} / ${r.service.p99_ms} | ${r.baseline.per_second} | ${r.baseline.p50_ms} / ${r.baseline.p99_ms} | ${r.ratio} | ${mark(r.ratio >= 0.7)} |`);
      }
      out.push("");
      if (send.rooms) {
        out.push(
          "### Several rooms at once, against a plain client",
          "",
          `${send.rooms.params.rooms} channels' rooms; the plain client sends the same messages as the same user with the application service's token, one PUT at a time per room, all rooms in parallel. ${send.rooms.params.rounds} alternating rounds of ${send.rooms.params.seconds} s, median kept. Target (issue 15, 5): ≥ 0.9.`,
          "",
          "| rooms | service senders | service msg/s | p50 / p99 ms | plain client msg/s | p50 / p99 ms | ratio | target |",
          "|---|---|---|---|---|---|---|---|",
        );
        for (const r of send.rooms.rows) {
          out.push(`| ${r.rooms} | ${r.senders} | ${r.service.per_second} | ${r.service.p50_ms} / ${r.service.p99_ms} | ${r.plain_client.per_second} | ${r.plain_client.p50_ms} / ${r.plain_client.p99_ms} | ${r.ratio} | ${mark(r.ratio >= 0.9)} |`);
        }
        out.push("");
      }
      if (send.limits) {
        const l = send.limits;
        out.push(
          "### What the default rate limiter costs",
          "",
          `The same service with every bucket on (budgets never reached, so every send is admitted) against limits off, in alternating rounds: ${l.params.rounds} of ${l.params.seconds} s per configuration, pooled. Target: the default costs at most 10 % more (on ÷ off ≥ 0.91).`,
          "",
          "| channels | senders | limits off msg/s | limits on msg/s | on ÷ off | extra cost | median round | CPU ms per send (service + PostgreSQL), off → on | target |",
          "|---|---|---|---|---|---|---|---|---|",
        );
        for (const r of l.rows) {
          out.push(`| ${r.channels} | ${r.concurrency} | ${r.off.per_second} | ${r.on.per_second} | ${r.ratio} | ${r.extra_cost_pct} % | ${r.median_round_ratio ?? ""} | ${r.cpu_ms_per_send ? `${r.cpu_ms_per_send.off} → ${r.cpu_ms_per_send.on} (${r.cpu_extra_pct} %)` : ""} | ${mark(r.extra_cost_pct <= 10)} |`);
        }
        out.push("");
      }
    }
  }
  const fanout = load("fanout");
  if (fanout) {
    // Results written before the many-channels case have one channel per row and no `channels`.
    const shape = (r: any) => ((r.channels ?? 1) === 1 ? `1 × ${r.subscribers}` : `${r.channels} × ${r.subscribers_per_channel}`);
    out.push(
      `## b) Fan-out`,
      "",
      "Shapes are channels × subscribers per channel; a run spreads its messages round-robin over the channels, so every subscriber gets the same number of frames.",
      "deliveries/s = frames received by all subscribers ÷ (last delivery − first send); p99 from send to delivery (the worst loader process's p99). Targets: ≥ 0.9 × raw Bun, ≥ 3 × Node ws and Socket.IO.",
      "",
    );
    out.push("| channels × subscribers | messages | target | deliveries/s | sends/s | p50 / p99 ms |", "|---|---|---|---|---|---|");
    for (const r of fanout.rows) {
      for (const [name, x] of Object.entries<any>(r.results)) {
        out.push(`| ${shape(r)} | ${r.messages} | ${name} | ${x.deliveries_per_s} | ${x.sends_per_s} | ${x.p50_ms} / ${x.p99_ms}${x.complete ? "" : " (incomplete)"} |`);
      }
    }
    out.push("", "| channels × subscribers | service ÷ raw Bun | service ÷ Node ws | service ÷ Socket.IO |", "|---|---|---|---|");
    for (const r of fanout.rows) {
      out.push(`| ${shape(r)} | ${r.ratio_vs_bun} (${mark(r.ratio_vs_bun >= 0.9)}) | ${r.ratio_vs_node_ws} (${mark(r.ratio_vs_node_ws >= 3)}) | ${r.ratio_vs_socketio} (${mark(r.ratio_vs_socketio >= 3)}) |`);
    }
    out.push("");
    if (fanout.paced?.length) {
      out.push(
        "Paced pass: every target gets the same send schedule (the rate below, spread over the channels), so the send path's limit is out of the picture and latency compares the fan-out paths.",
        "",
      );
      out.push("| channels × subscribers | messages/s | target | p50 / p99 ms (send → delivery) | complete |", "|---|---|---|---|---|");
      for (const p of fanout.paced) {
        const rate = p.rate_per_s ?? fanout.params.paced_rate;
        for (const [name, x] of Object.entries<any>(p.results)) out.push(`| ${shape(p)} | ${rate} | ${name} | ${x.p50_ms} / ${x.p99_ms} | ${x.complete ? "yes" : "no"} |`);
      }
      out.push("");
    }
  }
  const read = load("read");
  if (read) {
    out.push(`## c) Read (${read.params.rows.toLocaleString("en")} messages in one channel)`, "", "Target: p99 ≤ 5 ms for any page.", "");
    out.push("| query | concurrency | req/s | p50 ms | p99 ms | target |", "|---|---|---|---|---|---|");
    for (const x of Object.values<any>(read.results)) out.push(`| ${x.query} | ${x.concurrency} | ${x.per_second} | ${x.p50_ms} | ${x.p99_ms} | ${mark(x.meets_5ms_p99)} |`);
    out.push("");
  }
  const memory = load("memory");
  if (memory) {
    const m = memory.result;
    out.push(
      `## e) Memory`,
      "",
      "Targets: ≤ 30 KB per idle connection; passivated channels hold no actor; on the embedded defaults ≤ 250 MB resident idle after start and ≤ 400 MB after 10,000 messages. RSS is read from /proc without forcing the server's GC, so it is an upper bound.",
      "",
    );
    out.push("| measurement | value | target |", "|---|---|---|");
    const e = m.embedded;
    if (e) {
      const parts = (s: any) => `${s.rss_mb} MB (anon ${s.anon_mb}, file ${s.file_mb})`;
      out.push(`| embedded defaults, highest RSS from /ready through ${e.idle_rss_mb_per_second.length - 1} s idle | ${e.idle_max_rss_mb} MB (${e.at_ready.rss_mb} at /ready; ${parts(e.idle_end)} at the end) | ${mark(e.idle_target_met)} ≤ ${e.targets_mb.idle} MB |`);
      out.push(`| embedded defaults, RSS right after ${e.messages.toLocaleString("en-US")} messages (${memory.params.embedded.channels} channels, ${memory.params.embedded.senders} senders, ${e.sends_per_second}/s, ${e.sends_not_201} not 201) | ${parts(e.after_messages)}; peak ${e.rss_peak_during_sends_mb}, ${e.after_settle.rss_mb} MB ${memory.params.embedded.settleSeconds} s later | ${mark(e.after_messages_target_met)} ≤ ${e.targets_mb.after_messages} MB |`);
      out.push(`| embedded defaults, process high-water mark (VmHWM, start-up included) | ${e.after_settle.peak_mb} MB | |`);
    }
    out.push(`| service, per idle WebSocket (${m.connections} connections) | ${m.service_idle_connections.per_connection_kb} KB | ${mark(m.service_idle_connections.per_connection_kb <= 30)} |`);
    out.push(`| raw Bun pub/sub, per idle WebSocket (reference) | ${m.bun_idle_connections.per_connection_kb} KB | |`);
    out.push(`| actors right after ${m.channels} channels each sent once | ${m.actors_right_after_sends} | |`);
    out.push(`| actors after idling (ACTOR_IDLE_MS=${memory.params.actor_idle_ms}) | ${m.actors_after_idle} | ${mark(m.actors_after_idle === 0)} |`);
    out.push(`| RSS before / after the channels (KB) | ${m.rss_before_channels_kb} / ${m.rss_after_passivation_kb} (${m.per_passivated_channel_kb} KB per channel) | |`);
    out.push("");
  }
  const syncback = load("syncback");
  if (syncback) {
    out.push(`## d) Sync-back (Synapse)`, "", "Target: ratio ≤ 1.1 (our WebSocket ÷ a second matrix-js-sdk client).", "");
    out.push("| to our WebSocket p50 / p99 ms | to a syncing client p50 / p99 ms | ratio of p50 | target |", "|---|---|---|---|");
    const r = syncback.result;
    out.push(`| ${r.websocket.p50} / ${r.websocket.p99} | ${r.sdk.p50} / ${r.sdk.p99} | ${r.ratio_p50} | ${mark(r.ratio_p50 <= 1.1)} |`, "");
  }
  const cluster = load("cluster");
  if (cluster) out.push(...clusterSection(cluster, mark));
  const path = `${outDir}/${date}-summary.md`;
  await Bun.write(path, out.join("\n"));
  return path;
}

/** The cluster scenario: N instances against one, every cell's ratio against the ≥ 0.8 target, the forwarding hop, the frame checks. */
function clusterSection(c: any, mark: (ok: boolean) => string): string[] {
  const [one, many] = c.params.sizes as [number, number];
  const ms = (x: any) => `${x.p50_ms} / ${x.p99_ms}`;
  const out = [
    `## Cluster (CLUSTER=on: ${one} instance and ${many} instances on this machine)`,
    "",
    `Both clusters run side by side (each its own database and CLUSTER_NAME, the same NATS), taking turns: ${c.params.rounds} rounds of ${c.params.seconds} s per cell, median kept. Target: ${many} instances ≥ 0.8 × one instance (on shared cores more instances cannot be faster).`,
    "",
    `### Send (senders round-robin over the instances)`,
    "",
    `| channels | senders | ${one} instance msg/s | p50 / p99 ms | ${many} instances msg/s | p50 / p99 ms | forwarded | ratio | target |`,
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of c.send) {
    out.push(`| ${r.channels} | ${r.concurrency} | ${r.one.per_second} | ${ms(r.one)} | ${r.many.per_second} | ${ms(r.many)} | ${Math.round(100 * r.many.forwarded_share)} % | ${r.ratio} | ${mark(r.ratio >= 0.8)} |`);
  }
  out.push(
    "",
    `### Forwarding hop (1 channel of the ${many}-instance cluster: every request to its owner, or every request to a non-owner; ${c.params.hop_slices} slices of ${c.params.hop_slice_s} s each, the three in turn, pooled)`,
    "",
    `| senders | ${one} instance msg/s (p50 / p99 ms) | to the owner | to a non-owner | hop p50 | throughput lost | CPU per send: owner → non-owner (ms, all instances) |`,
    "|---|---|---|---|---|---|---|",
  );
  for (const h of c.hop) {
    const cell = (x: any) => `${x.per_second} (${ms(x)})`;
    const signed = (x: number) => (x >= 0 ? `+${x}` : `−${-x}`);
    out.push(`| ${h.concurrency} | ${cell(h.one)} | ${cell(h.direct)} | ${cell(h.forwarded)} | ${signed(h.hop_ms_p50)} ms | ${signed(h.hop_throughput_loss_pct)} % | ${h.direct.cpu_ms_per_send} → ${h.forwarded.cpu_ms_per_send} (${signed(h.hop_cpu_ms)}) |`);
  }
  out.push(
    "",
    `### Fan-out (subscribers spread over the instances, ${c.params.fanout_senders} senders round-robin over them; paced: the same schedule for both)`,
    "",
    `| channels × subscribers | ${one} instance deliveries/s | p50 / p99 ms | ${many} instances deliveries/s | p50 / p99 ms | ratio | target | paced msg/s | paced p50 / p99 ms, ${one} → ${many} |`,
    "|---|---|---|---|---|---|---|---|---|",
  );
  for (const f of c.fanout) {
    const p = f.paced;
    out.push(`| ${f.channels} × ${f.subscribers_per_channel} | ${f.one.deliveries_per_s} | ${ms(f.one)} | ${f.many.deliveries_per_s} | ${ms(f.many)} | ${f.ratio} | ${mark(f.ratio >= 0.8)} | ${p.rate_per_s} | ${ms(p.one)} → ${ms(p.many)} |`);
  }
  const rounds = [...c.send, ...c.hop].flatMap((r: any) => Object.values<number>(r.non_2xx_all_rounds ?? {}));
  const non2xx = rounds.reduce((n: number, x: number) => n + x, 0);
  const checks = c.fanout.flatMap((f: any) => [f.checks.one, f.checks.many]);
  const sum = (k: string) => checks.reduce((n: number, x: any) => n + x[k], 0);
  const warnings = [c.correctness.one, c.correctness.many].map((x: any) => Object.values<any>(x.warnings).reduce((n: number, w: any) => n + w.count, 0));
  out.push(
    "",
    `Checks, over every run: non-2xx sends ${non2xx}; fan-out frames missing ${sum("missing")}, duplicated ${sum("duplicated")}, message.updated after a repair ${sum("updated")}, fan-out send errors ${sum("send_errors")}; shards moved during the run ${c.correctness.one.shards_moved} / ${c.correctness.many.shards_moved}; warnings logged ${warnings.join(" / ")}.`,
    "",
  );
  return out;
}
