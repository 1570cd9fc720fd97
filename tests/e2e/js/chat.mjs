// Drives Hubbub's Socket.IO gateway with the official JavaScript client, for
// tests/e2e/test_gateway_js.py. Input: HUBBUB_URL, HUBBUB_TOKEN, HUBBUB_ROOM (env).
// Output: one JSON object per line on stdout, one per step; exit 0 when every step passed.
import { io } from "socket.io-client";

const url = process.env.HUBBUB_URL;
const token = process.env.HUBBUB_TOKEN;
const roomId = process.env.HUBBUB_ROOM;
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const deadline = setTimeout(() => { say({ step: "timeout" }); process.exit(2); }, 30000);

function refusedWith(auth) {
  return new Promise((resolve) => {
    const bad = io(url, { auth, reconnection: false, transports: ["websocket"] });
    bad.on("connect", () => { bad.close(); resolve({ connected: true }); });
    bad.on("connect_error", (err) => { bad.close(); resolve({ message: err.message, data: err.data }); });
  });
}

const socket = io(url, { auth: { token }, reconnection: false });
const incoming = new Promise((resolve) => {
  socket.on("message:new", (payload) => {
    if (payload.message.client_id !== "js-1") resolve(payload);  // not our own echo
  });
});

socket.on("connect", async () => {
  try {
    const joined = await socket.timeout(10000).emitWithAck("room:join", { room_id: roomId });
    say({ step: "joined", ack: joined });
    const received = await incoming;
    say({ step: "message:new", data: received });
    const sent = await socket.timeout(10000).emitWithAck("message:send", {
      room_id: roomId, client_id: "js-1", text: "hello from javascript",
    });
    say({ step: "sent", ack: sent });
    const garbage = await socket.timeout(10000).emitWithAck("message:send", "garbage");
    say({ step: "garbage", ack: garbage });
    say({ step: "refused", error: await refusedWith({ token: "not-a-jwt" }) });
    socket.close();
    clearTimeout(deadline);
    say({ step: "done" });
  } catch (err) {
    say({ step: "error", error: String(err) });
    process.exit(1);
  }
});
socket.on("connect_error", (err) => { say({ step: "connect_error", message: err.message }); process.exit(1); });
