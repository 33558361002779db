/** A MatrixRTC membership as matrix-js-sdk's MembershipManager sends it (per device, MSC4143's state-event form). */
export const rtcMembership = (deviceId: string, extra: Record<string, unknown> = {}) => ({
  application: "m.call",
  call_id: "",
  scope: "m.room",
  device_id: deviceId,
  expires: 14_400_000,
  focus_active: { type: "livekit", focus_selection: "oldest_membership" },
  foci_preferred: [{ type: "livekit", livekit_service_url: "https://livekit.example.org", livekit_alias: "room" }],
  "m.call.intent": "video",
  ...extra,
});
