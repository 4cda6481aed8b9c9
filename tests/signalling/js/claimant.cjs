// The claimant's side of a call, spoken with the official socket.io-client as a browser would.
// Usage: node claimant.cjs <socket.io-client module dir> <server url> <auth JSON>
// Prints one JSON line per step; exits 0 when the scenario completed.
"use strict";
const { io } = require(process.argv[2]);
const [url, authJson] = process.argv.slice(3);
const out = (step, data) => process.stdout.write(JSON.stringify({ step, data }) + "\n");
const socket = io(url + "call", { auth: JSON.parse(authJson), reconnection: false, timeout: 5000 });
const fail = setTimeout(() => { out("timeout", null); process.exit(2); }, 10000);

socket.on("connect_error", (err) => { out("connect_error", { message: err.message, data: err.data }); clearTimeout(fail); process.exit(0); });
socket.on("presence", (data) => out("presence", data));
socket.on("chat", (msg) => {
  out("chat", msg);
  if (msg.text === "bye") { socket.disconnect(); clearTimeout(fail); process.exit(0); }
});
socket.on("connect", async () => {
  const joined = await socket.timeout(5000).emitWithAck("join");
  out("joined", joined);
  out("chat_ack", await socket.timeout(5000).emitWithAck("chat", { text: "Hello from the phone" }));
  out("bad_ack", await socket.timeout(5000).emitWithAck("cursor", { action: "move", x: 7 }));
});
