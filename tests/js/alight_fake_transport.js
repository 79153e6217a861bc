// alight.js's Socket and Channel driven through a scripted in-memory transport (no
// server, no browser): what a test needs to see the client's own bookkeeping.
// Prints one JSON line per check: {"check", ...}; "error" when a check threw.
"use strict"

const fs = require("fs")
const path = require("path")
const vm = require("vm")
const {UNIT, emit, startDeadline} = require("./_harness")

startDeadline(10000 * UNIT)

const source = fs.readFileSync(path.join(__dirname, "..", "..", "channels", "static", "alight.js"), "utf8")
const context = {setTimeout, clearTimeout, console, TextEncoder, TextDecoder, btoa, atob}
context.self = context
vm.createContext(context)
vm.runInContext(source, context)
const {Socket} = context.alight

// A WebSocket stand-in: `open()` and `receive(frame)` are the server's moves; `sent`
// holds the client's frames (decoded).
class FakeTransport {
  constructor(url){
    this.url = url
    this.readyState = 0
    this.sent = []
    FakeTransport.last = this
  }
  send(data){ this.sent.push(JSON.parse(data)) }
  close(){ this.readyState = 3 }
  open(){ this.readyState = 1; this.onopen() }
  receive(frame){ this.onmessage({data: JSON.stringify(frame)}) }
  reply(frame, response){ this.receive([frame[0], frame[1], frame[2], "phx_reply", {status: "ok", response}]) }
}

function replyBindings(channel){
  return channel.bindings.filter(b => b.event.indexOf("chan_reply_") === 0).length
}

function check(name, body){
  try {
    emit(name, body())
  } catch(error){
    emit(name, {error: String(error && error.stack || error)})
  }
}

// Pushes made before the join: sent once joined, and answered; no reply binding is
// left behind for the refs they were given while buffered.
check("buffered_pushes_leave_no_bindings", () => {
  const socket = new Socket("/socket", {transport: FakeTransport, heartbeatIntervalMs: 3600000})
  socket.endPointURL = () => "ws://test/socket/websocket?vsn=2.0.0"
  socket.connect()
  const channel = socket.channel("room:buffered")
  channel.join()
  const replies = []
  for(let n = 0; n < 3; n++){
    channel.push("ping", {n}).receive("ok", resp => replies.push(resp.n))
  }
  const conn = FakeTransport.last
  conn.open()
  const join = conn.sent.find(f => f[3] === "phx_join")
  conn.reply(join, {})
  conn.sent.filter(f => f[3] === "ping").forEach(f => conn.reply(f, {n: f[4].n}))
  const left = replyBindings(channel)
  socket.disconnect()
  return {replies, pings_sent: conn.sent.filter(f => f[3] === "ping").length, reply_bindings_left: left}
})

// A channel that never joins (the socket never opens): pushes that timed out in its
// buffer do not pile up there.
async function timedOutPushesLeaveTheBuffer(){
  const socket = new Socket("/socket", {transport: FakeTransport, heartbeatIntervalMs: 3600000})
  socket.endPointURL = () => "ws://test/socket/websocket?vsn=2.0.0"
  socket.connect()
  const channel = socket.channel("room:never")
  channel.join()
  const timeouts = []
  for(let n = 0; n < 20; n++){
    timeouts.push(new Promise(resolve => channel.push("ping", {n}, 1).receive("timeout", resolve)))
  }
  await Promise.all(timeouts)
  channel.push("ping", {n: "last"}, 1)
  const buffered = channel.pushBuffer.length
  channel.leave()
  socket.disconnect()
  return {timed_out: timeouts.length, buffered}
}

timedOutPushesLeaveTheBuffer().then(
  fields => emit("timed_out_pushes_leave_the_buffer", fields),
  error => emit("timed_out_pushes_leave_the_buffer", {error: String(error && error.stack || error)})
)
