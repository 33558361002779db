import type { ChannelPorts } from "../../channel/deps.ts";
import type { ChannelRow } from "../../store/rows.ts";
import { Subjects } from "../../events/model.ts";
import { nextCallDeadline } from "../../store/calls.ts";
import { callSignature, readCallView } from "./view.ts";

type Timer = ReturnType<typeof setTimeout>;

/** What announcing a channel's call state needs; no ChannelContext, since a timer outlives the job that set it. */
export interface CallTarget {
  deps: ChannelPorts;
  channel: ChannelRow;
}

interface ChannelCallState {
  /** What was last announced (callSignature), null before the first announcement of this process. */
  last: string | null;
  /** Fires when a membership expires or an invite stops ringing. */
  timer: Timer | null;
  /** Announcements of one channel run one after another, each reading the state afresh: the last one sent is the newest. */
  chain: Promise<void>;
}

// Per running app (its actor deps), like typing: a hot reload or a second server in a test starts empty.
const states = new WeakMap<ChannelPorts, Map<string, ChannelCallState>>();

function stateOf(target: CallTarget): ChannelCallState {
  let byChannel = states.get(target.deps);
  if (!byChannel) states.set(target.deps, (byChannel = new Map()));
  let state = byChannel.get(target.channel.id);
  if (!state) byChannel.set(target.channel.id, (state = { last: null, timer: null, chain: Promise.resolve() }));
  return state;
}

/**
 * Tells subscribers the channel's call state (the call.updated frame and messaging.call.updated)
 * when what they see of it changed: called after a call event is indexed, and by the timer set
 * for the next expiry, so a membership that runs out or an invite nobody answers is announced
 * too. Renewals that only push an expiry further change nothing visible and are not announced.
 */
export function announceCall(target: CallTarget): Promise<void> {
  const state = stateOf(target);
  const run = state.chain.then(() => announceNow(target, state));
  state.chain = run.catch((err) => target.deps.log.warn({ channel_id: target.channel.id, err: String(err) }, "could not announce the call state"));
  return state.chain;
}

/**
 * After a restart nothing is announced yet and no timer runs: this takes the current state as
 * announced (subscribers saw it, or nothing changed) and sets the timer for its next expiry.
 * A channel this process already announced or armed is left as it is.
 */
export function armCall(target: CallTarget): Promise<void> {
  const state = stateOf(target);
  const run = state.chain.then(async () => {
    if (state.last !== null || state.timer) return;
    const now = new Date();
    state.last = callSignature(await readCallView(target.deps.sql, target.channel, now));
    schedule(target, state, await nextCallDeadline(target.deps.sql, target.channel.id, now));
  });
  state.chain = run.catch((err) => target.deps.log.warn({ channel_id: target.channel.id, err: String(err) }, "could not arm the call expiry timer"));
  return state.chain;
}

async function announceNow(target: CallTarget, state: ChannelCallState): Promise<void> {
  const { deps, channel } = target;
  const now = new Date();
  const view = await readCallView(deps.sql, channel, now);
  const signature = callSignature(view);
  if (signature !== state.last) {
    state.last = signature;
    deps.broadcast(channel.id, { type: "call.updated", call: view });
    await deps.events.publish(Subjects.callUpdated, {
      event_id: `call.updated:${channel.id}:${Bun.randomUUIDv7()}`,
      channel_id: channel.id,
      microdao_id: channel.microdao_id,
      active: view.active,
      participant_count: view.participant_count,
      member_ids: view.member_ids,
      since: view.since,
      legacy_calls: view.legacy_calls.map((c) => ({ call_id: c.call_id, state: c.state, caller_id: c.caller_id, callee_id: c.callee_id })),
      updated_at: now.toISOString(),
    });
  }
  schedule(target, state, await nextCallDeadline(deps.sql, channel.id, now));
}

function schedule(target: CallTarget, state: ChannelCallState, at: Date | null): void {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
  if (!at) return;
  // setTimeout's bound (about 24.8 days); a later expiry is looked at again then.
  const delay = Math.min(Math.max(0, at.getTime() - Date.now()) + 10, 2 ** 31 - 1);
  const timer: Timer = setTimeout(() => {
    if (state.timer !== timer) return;
    state.timer = null;
    void announceCall(target);
  }, delay);
  (timer as { unref?: () => void }).unref?.();
  state.timer = timer;
}
