export { CallParticipantView, CallView, LegacyCallView, TurnServerView } from "../../wire/calls.ts";
export { CallUpdatedFrame } from "../../wire/frames.ts";
