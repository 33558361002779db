"use strict";
// The demo page: plain DOM, no framework, no build step. The identity is dev mode's X-User-Id
// (and ?user_id= on the WebSocket, which a browser cannot give headers). Text only ever goes
// into the page as textContent.

const API = "/api/messaging";
const $ = (id) => document.getElementById(id);

const state = {
  user: "",
  channel: null,
  messages: new Map(), // id -> message as the API and the frames give it
  mine: new Set(), // "messageId emoji" for my own reactions (frames carry me: false for everyone)
  readers: new Map(), // member id -> last_read_seq, from read frames
  lastSeq: 0, // the highest message.created seq processed: where a reconnect resumes
  socket: null,
  paused: false,
  retryMs: 1000,
  replyTo: null,
  typingSentAt: 0,
  readSeq: 0,
};

async function api(path, { method = "GET", body } = {}) {
  const headers = { "x-user-id": state.user };
  if (body) headers["content-type"] = "application/json";
  const res = await fetch(API + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(data?.message ?? `${method} ${path}: ${res.status}`);
  return data;
}

const problem = (err) => ($("problem").textContent = err ? String(err.message ?? err) : "");
function setStatus(kind, text) {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}
const setUrl = () => {
  const query = new URLSearchParams({ user: state.user, ...(state.channel ? { channel: state.channel.id } : {}) });
  history.replaceState(null, "", `/?${query}`);
};

// Channels

async function loadChannels() {
  const channels = await api("/channels");
  $("channels").replaceChildren(
    ...channels.map((channel) => {
      const button = Object.assign(document.createElement("button"), { type: "button", textContent: `# ${channel.name}` });
      button.dataset.id = channel.id;
      button.classList.toggle("active", channel.id === state.channel?.id);
      button.onclick = () => openChannel(channel).catch(problem);
      const item = document.createElement("li");
      item.append(button);
      return item;
    }),
  );
  return channels;
}

$("create").onsubmit = async (event) => {
  event.preventDefault();
  const name = $("channel-name").value.trim();
  const base = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "channel";
  try {
    const body = { slug: `${base}-${Date.now().toString(36)}`, name, microdao_id: "microdao:daarion", visibility: "public" };
    const channel = await api("/channels", { method: "POST", body });
    $("channel-name").value = "";
    await openChannel(channel);
  } catch (err) {
    problem(err);
  }
};

async function openChannel(channel) {
  disconnect();
  Object.assign(state, { channel, paused: false, replyTo: null, readSeq: 0 });
  state.readers.clear();
  setUrl();
  $("channel-title").textContent = `# ${channel.name}`;
  for (const id of ["text", "send", "pause"]) $(id).disabled = false;
  $("pause").textContent = "Pause live";
  showReplying();
  await loadChannels();
  await loadHistory();
  connect();
}

/** The newest page through REST; the WebSocket then resumes after the newest seq it had. */
async function loadHistory() {
  const page = await api(`/channels/${state.channel.id}/messages?limit=50`);
  state.messages.clear();
  state.mine.clear();
  state.lastSeq = 0;
  for (const message of page.reverse()) remember(message);
  render();
  markRead();
}

function remember(message) {
  state.messages.set(message.id, message);
  state.lastSeq = Math.max(state.lastSeq, message.seq);
  for (const r of message.reactions) if (r.me) state.mine.add(`${message.id} ${r.emoji}`);
}

// Live: the WebSocket, with resume after every reconnect

function connect() {
  const channel = state.channel;
  if (!channel || state.paused || state.socket) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({ user_id: state.user, since_seq: String(state.lastSeq) });
  const socket = new WebSocket(`${scheme}//${location.host}/ws/messaging/${channel.id}?${query}`);
  state.socket = socket;
  setStatus("connecting", `replaying after seq ${state.lastSeq}…`);
  socket.onmessage = (event) => event.data !== "pong" && onFrame(JSON.parse(event.data));
  socket.onopen = () => (state.retryMs = 1000);
  socket.onclose = (event) => {
    if (state.socket !== socket) return; // closed on purpose (pause, another channel)
    state.socket = null;
    if (event.code === 4403) return setStatus("closed", "you may no longer read this channel");
    if (event.code === 4410) return void loadHistory().then(connect, problem); // resync_required: reload, then resume
    setStatus("reconnecting", `disconnected (${event.code}); resuming after seq ${state.lastSeq} soon`);
    setTimeout(() => state.channel === channel && connect(), state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 15000);
  };
}

function disconnect() {
  const socket = state.socket;
  state.socket = null;
  socket?.close(1000);
}

$("pause").onclick = () => {
  state.paused = !state.paused;
  $("pause").textContent = state.paused ? "Resume live" : "Pause live";
  if (!state.paused) return connect();
  disconnect();
  setStatus("paused", `paused after seq ${state.lastSeq}`);
};

function onFrame(frame) {
  switch (frame.type) {
    case "message.created":
      remember(frame.message);
      markRead();
      break;
    case "message.updated":
    case "message.failed":
      state.messages.set(frame.message.id, frame.message);
      break;
    case "message.deleted":
      state.messages.delete(frame.message_id);
      break;
    case "reaction.added":
    case "reaction.removed":
      applyReaction(frame);
      break;
    case "typing":
      showTyping(frame.user_ids);
      return;
    case "read":
      state.readers.set(frame.member_id, frame.last_read_seq);
      break;
    case "resumed":
      setStatus("live", `live · resumed after seq ${frame.since_seq}, ${frame.replayed} replayed`);
      return;
    case "error":
      problem(frame.message);
      return;
    default:
      return; // membership, channel and pin frames: not shown here
  }
  render();
}

function applyReaction({ type, message_id, emoji, reactor_id, count }) {
  const message = state.messages.get(message_id);
  if (reactor_id === state.user) state.mine[type === "reaction.added" ? "add" : "delete"](`${message_id} ${emoji}`);
  if (!message) return;
  const others = message.reactions.filter((r) => r.emoji !== emoji);
  const existing = message.reactions.find((r) => r.emoji === emoji);
  message.reactions = count > 0 ? (existing ? message.reactions.map((r) => (r === existing ? { ...r, count } : r)) : [...others, { emoji, count, me: false }]) : others;
}

// Rendering

function render() {
  const ordered = [...state.messages.values()].sort((a, b) => a.seq - b.seq);
  const readBy = readersByMessage(ordered);
  $("messages").replaceChildren(...ordered.map((message) => messageElement(message, readBy.get(message.id) ?? [])));
  $("messages").lastElementChild?.scrollIntoView({ block: "end" });
}

/** Each reader under the newest message they have read (Slack and Element show receipts so). */
function readersByMessage(ordered) {
  const byMessage = new Map();
  for (const [member, seq] of state.readers) {
    if (member === state.user) continue;
    const last = ordered.findLast((m) => m.seq <= seq);
    if (last) byMessage.set(last.id, [...(byMessage.get(last.id) ?? []), member]);
  }
  return byMessage;
}

function messageElement(message, readers) {
  const item = $("message-template").content.firstElementChild.cloneNode(true);
  item.dataset.id = message.id;
  item.dataset.status = message.status;
  item.querySelector(".sender").textContent = message.sender_id;
  item.querySelector("time").textContent = new Date(message.created_at).toLocaleTimeString();
  item.querySelector(".seq").textContent = `#${message.seq}${message.status === "sent" ? "" : ` (${message.status})`}`;
  item.querySelector(".text").textContent = message.content_preview;
  if (message.reply_to) {
    const quoted = state.messages.get(message.reply_to);
    const quote = item.querySelector(".quote");
    quote.hidden = false;
    quote.textContent = quoted ? `${quoted.sender_id}: ${quoted.content_preview}` : "an earlier message";
  }
  item.querySelector(".reactions").replaceChildren(
    ...message.reactions.map((r) => {
      const chip = Object.assign(document.createElement("button"), { type: "button", className: "reaction", textContent: `${r.emoji} ${r.count}` });
      chip.classList.toggle("mine", state.mine.has(`${message.id} ${r.emoji}`));
      chip.onclick = () => toggleReaction(message.id, r.emoji);
      return chip;
    }),
  );
  for (const button of item.querySelectorAll(".react")) button.onclick = () => toggleReaction(message.id, button.dataset.emoji);
  item.querySelector(".reply").onclick = () => {
    state.replyTo = message;
    showReplying();
    $("text").focus();
  };
  item.querySelector(".read-by").textContent = readers.length ? `Seen by ${readers.join(", ")}` : "";
  return item;
}

function showTyping(userIds) {
  const others = userIds.filter((id) => id !== state.user);
  $("typing").textContent = others.length ? `${others.join(", ")} ${others.length > 1 ? "are" : "is"} typing…` : "";
}

function showReplying() {
  $("replying").hidden = !state.replyTo;
  $("replying-text").textContent = state.replyTo ? `${state.replyTo.sender_id}: ${state.replyTo.content_preview}` : "";
}
$("cancel-reply").onclick = () => {
  state.replyTo = null;
  showReplying();
};

// Writing: send, reply, react, typing, read

$("composer").onsubmit = async (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text || !state.channel) return;
  const body = { text, ...(state.replyTo ? { reply_to: state.replyTo.id } : {}) };
  try {
    await api(`/channels/${state.channel.id}/messages`, { method: "POST", body });
    $("text").value = "";
    state.replyTo = null;
    showReplying();
    problem(null);
    await sendTyping(false);
  } catch (err) {
    problem(err);
  }
};

async function toggleReaction(messageId, emoji) {
  const path = `/channels/${state.channel.id}/messages/${messageId}/reactions`;
  const mine = state.mine.has(`${messageId} ${emoji}`);
  try {
    if (mine) await api(`${path}?emoji=${encodeURIComponent(emoji)}`, { method: "DELETE" });
    else await api(path, { method: "POST", body: { emoji } });
  } catch (err) {
    problem(err);
  }
}

/** Typing is renewed every few seconds while the text box has text, and stopped when it empties. */
async function sendTyping(typing) {
  if (!state.channel || (!typing && !state.typingSentAt)) return;
  state.typingSentAt = typing ? Date.now() : 0;
  // A viewer who has not written yet is not a member and may not type (403): say nothing until they send.
  await api(`/channels/${state.channel.id}/typing`, { method: "POST", body: typing ? { typing, timeout_ms: 6000 } : { typing } }).catch(() => {});
}
$("text").oninput = () => {
  const hasText = $("text").value.trim() !== "";
  if (hasText && Date.now() - state.typingSentAt > 3000) void sendTyping(true);
  if (!hasText) void sendTyping(false);
};

/** What a visible page shows counts as read; a viewer who is not a member yet (no first write) is refused, quietly. */
let readTimer = null;
function markRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(async () => {
    if (document.visibilityState !== "visible" || !state.channel) return;
    const newest = [...state.messages.values()].filter((m) => m.status === "sent").sort((a, b) => b.seq - a.seq)[0];
    if (!newest || newest.seq <= state.readSeq) return;
    try {
      await api(`/channels/${state.channel.id}/read`, { method: "POST", body: { message_id: newest.id } });
      state.readSeq = newest.seq;
    } catch {
      // 403 before the first write in a public channel, 409 while a send is still pending.
    }
  }, 300);
}
document.addEventListener("visibilitychange", markRead);

// Start: ?user=…&channel=… pick the identity and the channel, so two tabs can be two people.

$("identity").onsubmit = async (event) => {
  event.preventDefault();
  state.user = $("user").value.trim();
  setUrl();
  const channel = state.channel;
  await loadChannels().catch(problem);
  if (channel) await openChannel(channel).catch(problem);
};

async function start() {
  const query = new URLSearchParams(location.search);
  state.user = query.get("user") || `user:${["alice", "bob", "carol", "dave"][Math.floor(Math.random() * 4)]}`;
  $("user").value = state.user;
  setUrl();
  const channels = await loadChannels();
  const wanted = channels.find((c) => c.id === query.get("channel"));
  if (wanted) await openChannel(wanted);
}
start().catch(problem);
