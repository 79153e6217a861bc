// alight.js over long-poll in Node (fetch, no browser): a channel left just before
// `socket.disconnect()` is left on the server at once (the POST of its phx_leave goes
// out before the transport closes), so the others see its presence go without waiting
// for the server to end the idle session.
//
//   node alight_longpoll_leave.js HOST:PORT   (the reference app)
//
// Prints one JSON line {"check": "left", "before", "after", "took_ms"}, or "error".
"use strict"

const fs = require("fs")
const path = require("path")
const vm = require("vm")
const {UNIT, emit, startDeadline} = require("./_harness")

const host = process.argv[2]
startDeadline(30000 * UNIT)

const source = fs.readFileSync(path.join(__dirname, "..", "..", "channels", "static", "alight.js"), "utf8")
const context = {
  setTimeout, clearTimeout, console, fetch, AbortController, TextEncoder, TextDecoder, btoa, atob,
}
context.self = context
vm.createContext(context)
vm.runInContext(source, context)
const {Socket, Presence} = context.alight

function joined(channel){
  return new Promise((resolve, reject) => {
    channel.join()
      .receive("ok", resolve)
      .receive("error", e => reject(new Error("join refused: " + JSON.stringify(e))))
      .receive("timeout", () => reject(new Error("join timed out")))
  })
}

async function main(){
  const topic = "room:lp-leave-then-go"
  const watcher = new Socket(`http://${host}/socket`, {params: {user_id: "alice"}})
  const leaver = new Socket(`http://${host}/socket`, {params: {user_id: "bob"}})
  watcher.connect()
  leaver.connect()
  const watching = watcher.channel(topic, {device: "d1"})
  const presence = new Presence(watching)
  let names = () => presence.list((key) => key).sort()
  let waiting = null
  presence.onSync(() => { if(waiting && waiting.test()){ waiting.resolve() } })
  const until = (test, ms) => new Promise((resolve, reject) => {
    if(test()){ return resolve() }
    const timer = setTimeout(() => reject(new Error(`presence still ${JSON.stringify(names())}`)), ms)
    waiting = {test, resolve: () => { clearTimeout(timer); resolve() }}
  })
  await joined(watching)
  const leaving = leaver.channel(topic, {device: "d2"})
  await joined(leaving)
  await until(() => names().length === 2, 5000 * UNIT)
  const before = names()
  const start = Date.now()
  leaving.leave()
  leaver.disconnect()
  // The server ends an idle long-poll session after 15 s: well before that, or never.
  await until(() => names().length === 1, 8000)
  emit("left", {before, after: names(), took_ms: Date.now() - start})
  watcher.disconnect()
}

main().catch(error => {
  emit("left", {error: String(error && error.stack || error)})
  process.exit(1)
})
