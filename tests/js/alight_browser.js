// alight's own browser client (channels/static/alight.js, served by the app at
// /alight.js) inside headless Chromium (driven by playwright-core) against the
// reference app over WebSocket. The assertions are in tests/integration/test_alight_js.py.
//
//   node alight_browser.js PAGE_URL APP_HOST:PORT [CHROMIUM]
//
// PAGE_URL is a page whose script tag loads http://APP_HOST:PORT/alight.js. Prints one
// JSON line: {"check": "scenario", ...what the page saw}, then {"check": "done"}.
"use strict"

const {chromium} = require("playwright-core")

const [pageUrl, host, executablePath = "/usr/bin/chromium"] = process.argv.slice(2)
const {UNIT, emit, startDeadline} = require("./_harness")
const STEP_MS = 4000 * UNIT
const DEADLINE_MS = 50000 * UNIT

startDeadline(DEADLINE_MS)

// Runs in the page.
async function scenario({host, stepMs}){
  const out = {
    has_alight: typeof window.alight === "object",
    has_phoenix: typeof window.Phoenix !== "undefined",
    user_agent: navigator.userAgent,
  }
  const {Socket, Presence} = window.alight
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
  const within = (promise, what) => {
    let timer
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), stepMs)
    })
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
  }
  const until = async (predicate, what) => {
    const deadline = Date.now() + stepMs
    while(!predicate()){
      if(Date.now() > deadline){ throw new Error(`timed out waiting for ${what}`) }
      await sleep(20)
    }
  }
  const reply = (push, what) => within(new Promise(resolve => {
    push.receive("ok", response => resolve({status: "ok", response}))
      .receive("error", response => resolve({status: "error", response}))
      .receive("timeout", () => resolve({status: "timeout"}))
  }), what)
  const open = (user, opts = {}) => {
    const socket = new Socket(`ws://${host}/socket`, {params: {user_id: user}, timeout: stepMs, ...opts})
    const opened = new Promise(resolve => socket.onOpen(resolve))
    socket.connect()
    return within(opened, `${user} open`).then(() => socket)
  }
  const names = presence => presence.list((key, {metas}) => [key, metas.map(m => m.device)])
    .sort((x, y) => x[0] < y[0] ? -1 : 1)

  // Backoff with jitter: a transport that always fails at once; the gaps between
  // attempts are 200 ms minus up to half of it, at random.
  const attempts = []
  class FailingTransport {
    constructor(url){
      attempts.push(performance.now())
      this.readyState = 0
      setTimeout(() => { this.readyState = 3; this.onclose({code: 1006}) }, 0)
    }
    close(){ this.readyState = 3 }
  }
  const failing = new Socket("ws://127.0.0.1:9/socket", {transport: FailingTransport, reconnectAfterMs: () => 200})
  failing.connect()
  await until(() => attempts.length >= 6, "six connection attempts")
  failing.disconnect()
  out.backoff_gaps = attempts.slice(1).map((t, i) => Math.round(t - attempts[i]))

  // Heartbeats every 150 ms on alice's socket: the replies are counted.
  const a = await open("alice", {heartbeatIntervalMs: 150})
  const b = await open("bob")
  out.url = a.endPointURL()
  let heartbeatReplies = 0
  a.onMessage(msg => {
    if(msg.topic === "phoenix" && msg.event === "phx_reply" && msg.payload.status === "ok"){ heartbeatReplies++ }
  })

  const room = a.channel("room:js", {device: "chromium-a"})
  const roomB = b.channel("room:js", () => ({device: "chromium-b"}))
  const presA = new Presence(room)
  const presB = new Presence(roomB)
  const joinsB = []
  const leavesB = []
  presB.onJoin((key, current, joined) => joinsB.push([key, current ? "update" : "new", joined.metas.length]))
  presB.onLeave((key, current, left) => leavesB.push([key, current.metas.length, left.metas.length]))
  let syncsA = 0
  presA.onSync(() => { syncsA++ })
  const shouts = {a: [], b: []}
  room.on("shout", p => shouts.a.push(p))
  roomB.on("shout", p => shouts.b.push(p))
  let errorsA = 0
  room.onError(() => { errorsA++ })

  out.join = await reply(room.join(), "join")
  out.join_b = await reply(roomB.join(), "join of b")

  const forbidden = a.channel("room:forbidden")
  out.join_error = await reply(forbidden.join(), "join error")
  out.forbidden_state = forbidden.state
  forbidden.leave()

  out.ping = await reply(room.push("ping", {from: "alight.js"}), "ping")
  out.error_reply = await reply(room.push("error_reply", {}), "error reply")
  out.user = await reply(room.push("user", {}), "user")
  const bin = await reply(room.push("binary", new Uint8Array([1, 2, 3, 250]).buffer), "binary")
  out.binary = {status: bin.status, is_buffer: bin.response instanceof ArrayBuffer,
    bytes: Array.from(new Uint8Array(bin.response))}

  room.push("shout", {msg: "from alight.js"})
  await until(() => shouts.a.length > 0 && shouts.b.length > 0, "shouts")
  out.shouts = shouts

  const both = [["alice", ["chromium-a"]], ["bob", ["chromium-b"]]]
  const same = (x, y) => JSON.stringify(x) === JSON.stringify(y)
  await until(() => same(names(presA), both) && same(names(presB), both), "presence of both users")
  out.presence_a = names(presA)
  out.presence_b = names(presB)
  out.presence_syncs_a = syncsA
  out.presence_joins_b = joinsB.slice()

  // A crash: phx_error, then a rejoin (with a fresh join ref) about 1 s later.
  const refBeforeCrash = room.joinRef()
  const leavesBeforeCrash = leavesB.length
  room.push("crash", {})
  await until(() => errorsA > 0, "phx_error of the crashed channel")
  out.state_after_crash = room.state
  await until(() => room.isJoined() && room.joinRef() !== refBeforeCrash, "rejoin after the crash")
  out.crash_rejoin_ping = await reply(room.push("ping", {after: "crash"}), "ping after the crash")
  await until(() => leavesB.length > leavesBeforeCrash && same(names(presB), both), "alice back in bob's presence")
  out.crash_leaves_b = leavesB.slice(leavesBeforeCrash)

  // The transport drops (closed under the client): reconnect, rejoin, pushes work.
  const refBeforeDrop = room.joinRef()
  const reopened = new Promise(resolve => { const ref = a.onOpen(() => { a.off([ref]); resolve() }) })
  a.conn.close()
  await within(reopened, "reconnect")
  await until(() => room.isJoined() && room.joinRef() !== refBeforeDrop, "rejoin after reconnect")
  out.reconnect_ping = await reply(room.push("ping", {after: "reconnect"}), "ping after reconnect")
  out.heartbeat_replies = heartbeatReplies

  // phx_close (the server stops the channel): closed for good, no rejoin.
  let closes = 0
  roomB.onClose(() => { closes++ })
  out.stop = await reply(roomB.push("stop", {}), "stop")
  await until(() => closes > 0, "phx_close")
  await sleep(1500)
  out.after_close = {state: roomB.state, closes, in_socket: b.channels.includes(roomB)}

  // leave(): closed at once, removed from the socket.
  room.leave()
  out.after_leave = {state: room.state, in_socket: a.channels.includes(room)}
  a.disconnect()
  b.disconnect()
  out.after_disconnect = a.connectionState()
  return out
}

async function main(){
  const browser = await chromium.launch({
    executablePath,
    args: [
      "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    timeout: 15000 * UNIT,
  })
  try {
    const page = await browser.newPage()
    const consoleErrors = []
    page.on("console", message => { if(message.type() === "error"){ consoleErrors.push(message.text()) } })
    page.on("pageerror", error => consoleErrors.push(String(error)))
    try {
      await page.goto(pageUrl, {timeout: STEP_MS})
      const seen = await page.evaluate(scenario, {host, stepMs: STEP_MS})
      emit("scenario", {...seen, console_errors: consoleErrors})
    } catch(error){
      emit("scenario", {error: String(error && error.message || error), console_errors: consoleErrors})
    } finally {
      await page.close()
    }
  } finally {
    await browser.close()
  }
  emit("done", {})
}

main().then(() => process.exit(0), error => {
  emit("fatal", {error: String(error && error.stack || error)})
  process.exit(1)
})
