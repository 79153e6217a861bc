// A phoenix.js client for the nemesis (benchmarks/faults.py): the official Socket,
// Channel and Presence, reconnecting and rejoining as phoenix.js does. It joins TOPIC
// as USER on HOST and prints one JSON line per observation until stdin closes:
//
//   node nemesis_client.js HOST:PORT USER TOPIC [phoenix|alight]
//
// With "alight" it runs alight.js (channels/static/alight.js, the browser client every
// endpoint serves) instead of the phoenix package, in a VM context with `ws`.
//
// {"kind": "joined"}, {"kind": "closed"}, {"kind": "diff"} (a presence_diff arrived),
// {"kind": "view", "refs": {key: [phx_ref, ...]}} (after every sync: what
// Presence.list shows), {"kind": "shout", "from", "seq"}.
"use strict"

const WebSocket = require("ws")

const [host, user, topic, lib = "phoenix"] = process.argv.slice(2)
const {Socket, Presence} = lib === "alight" ? loadAlight() : require("phoenix")

function loadAlight(){
  const fs = require("fs")
  const path = require("path")
  const vm = require("vm")
  const source = fs.readFileSync(path.join(__dirname, "..", "..", "channels", "static", "alight.js"), "utf8")
  const context = {setTimeout, clearTimeout, setInterval, clearInterval, console, WebSocket, TextEncoder, TextDecoder}
  context.self = context
  vm.createContext(context)
  vm.runInContext(source, context)
  return context.alight
}
if(!host || !user || !topic){
  console.error("usage: node nemesis_client.js HOST:PORT USER TOPIC")
  process.exit(2)
}
const say = fields => process.stdout.write(JSON.stringify(fields) + "\n")

const socket = new Socket(`ws://${host}/socket`, {
  params: {user_id: user},
  transport: WebSocket,
  timeout: 2000,
  reconnectAfterMs: tries => [100, 200, 500, 1000][tries - 1] || 1000,
  rejoinAfterMs: tries => [100, 200, 500, 1000][tries - 1] || 1000,
})
const channel = socket.channel(topic, {device: user})
const presence = new Presence(channel)
presence.onSync(() => {
  const refs = {}
  presence.list((key, p) => { refs[key] = p.metas.map(m => m.phx_ref).sort() })
  say({kind: "view", refs})
})
channel.on("presence_diff", () => say({kind: "diff"}))
channel.on("shout", payload => say({kind: "shout", from: payload.from, seq: payload.seq}))
socket.onClose(() => say({kind: "closed"}))
socket.onError(() => say({kind: "closed"}))
channel.onError(() => say({kind: "closed"}))
socket.connect()
channel.join().receive("ok", () => say({kind: "joined"}))
process.stdin.on("end", () => { socket.disconnect(() => process.exit(0)) })
process.stdin.resume()
