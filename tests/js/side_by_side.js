// The side-by-side scenario (tests/integration/test_side_by_side.py) run by the official
// phoenix client, or by alight.js (its ES module build, fetched from the app); the Python
// client runs the same steps, and the test compares the frames each sent on the wire
// (recorded by a relay between the client and the app).
//
//   node side_by_side.js WS_URL websocket|longpoll [phoenix|alight APP_HOST:PORT]
//
// WS_URL is the socket endpoint (ws://HOST:PORT/socket). Steps, each awaited: connect
// with params {user_id: "side"}, join "room:side" {device: "d"}, push ping {n: 1},
// push_me {x: 1} (and its "pushed"), error_reply, async {a: 1}, nope; then over
// WebSocket binary [1, 2, 3] and leave (long-poll has no binary replies, and phoenix.js
// drops a leave sent just before a disconnect there); disconnect. Prints
// {"check": "done", replies} or an error line.
"use strict"

const WebSocket = require("ws")
const {UNIT, emit, startDeadline} = require("./_harness")

const [url, transport = "websocket", client = "phoenix", appHost] = process.argv.slice(2)
const STEP_MS = 5000 * UNIT
startDeadline(20000 * UNIT)

function reply(push){
  return new Promise((resolve, reject) => {
    push.receive("ok", response => resolve({status: "ok", response}))
      .receive("error", response => resolve({status: "error", response}))
      .receive("timeout", () => reject(new Error("push timed out")))
  })
}

// phoenix.js from npm, or alight.mjs as the app serves it (imported from a data: URL).
async function clientModule(){
  if(client === "phoenix"){ return require("phoenix") }
  const source = await (await fetch(`http://${appHost}/alight.mjs`)).text()
  return import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`)
}

async function main(){
  const {Socket, LongPoll} = await clientModule()
  const socket = new Socket(url, {
    params: {user_id: "side"}, transport: transport === "longpoll" ? LongPoll : WebSocket, timeout: STEP_MS,
  })
  const opened = new Promise(resolve => socket.onOpen(resolve))
  socket.connect()
  await opened
  const channel = socket.channel("room:side", {device: "d"})
  const pushed = new Promise(resolve => channel.on("pushed", resolve))
  const replies = {}
  replies.join = await reply(channel.join())
  replies.ping = await reply(channel.push("ping", {n: 1}))
  replies.push_me = await reply(channel.push("push_me", {x: 1}))
  replies.pushed = await pushed
  replies.error_reply = await reply(channel.push("error_reply", {}))
  replies.async = await reply(channel.push("async", {a: 1}))
  replies.nope = await reply(channel.push("nope", {}))
  if(transport === "websocket"){
    const binary = await reply(channel.push("binary", new Uint8Array([1, 2, 3]).buffer))
    replies.binary = {status: binary.status, bytes: Array.from(new Uint8Array(binary.response))}
    channel.leave()
  }
  const closed = new Promise(resolve => socket.disconnect(resolve))
  await closed
  emit("done", {replies, client})
}

main().then(() => process.exit(0), error => {
  emit("scenario", {error: String(error && error.stack || error)})
  process.exit(1)
})
