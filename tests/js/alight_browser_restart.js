// alight.js in headless Chromium against a reference app that the test stops and
// restarts (tests/integration/test_clients_restart.py). The page is the app's own
// /health with /alight.js added, so it stays loaded while the app is down.
//
//   node alight_browser_restart.js APP_HOST:PORT [CHROMIUM]
//
// Two sockets (alice-ws over WebSocket with a heartbeat every 300 ms x the test unit,
// alice-lp over long-poll) join room:restart. One JSON line per phase, each one waiting
// for what the test does:
//   "joined"               both joined and answered a ping        → the test SIGSTOPs the app
//   "heartbeat_timeout"    the WebSocket closed itself             → the test SIGCONTs it
//   "heartbeat_recovered"  reconnected, rejoined, ping answered    → the test restarts the app
//   "restarted"            both reconnected and rejoined (new join refs), presence of both
//   "done"                 {page_errors}
"use strict"


const [host, executablePath = "/usr/bin/chromium"] = process.argv.slice(2)
const {UNIT, emit, startDeadline, launchChromium} = require("./_harness")
const STEP_MS = 5000 * UNIT
const RESTART_MS = 20000 * UNIT
const DEADLINE_MS = 90000 * UNIT

startDeadline(DEADLINE_MS)

// Runs in the page; `report(check, fields)` is the Node side's emit.
async function scenario({host, stepMs, restartMs, heartbeatMs}){
  const {Socket, Presence, LongPoll} = window.alight
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
  const until = async (predicate, what, ms = stepMs) => {
    const deadline = Date.now() + ms
    while(!predicate()){
      if(Date.now() > deadline){ throw new Error(`timed out waiting for ${what}`) }
      await sleep(20)
    }
  }
  const reply = push => new Promise(resolve => {
    push.receive("ok", response => resolve({status: "ok", response}))
      .receive("error", response => resolve({status: "error", response}))
      .receive("timeout", () => resolve({status: "timeout"}))
  })
  const sockets = {
    ws: new Socket(`ws://${host}/socket`, {params: {user_id: "alice-ws"}, timeout: stepMs, heartbeatIntervalMs: heartbeatMs}),
    lp: new Socket(`ws://${host}/socket`, {params: {user_id: "alice-lp"}, timeout: stepMs, transport: LongPoll}),
  }
  const closes = {ws: [], lp: []}
  const errors = {ws: [], lp: []}
  const rooms = {}
  const presences = {}
  for(const [name, socket] of Object.entries(sockets)){
    socket.onClose(event => closes[name].push({code: event.code, reason: event.reason}))
    socket.connect()
    rooms[name] = socket.channel("room:restart", {device: name})
    rooms[name].onError(reason => errors[name].push(reason && reason.reason))
    presences[name] = new Presence(rooms[name])
  }
  const joined = name => rooms[name].isJoined()
  const listed = name => presences[name].list(key => key).sort()
  const firstRefs = {}
  const pings = {}
  for(const name of ["ws", "lp"]){
    await reply(rooms[name].join())
    firstRefs[name] = rooms[name].joinRef()
    pings[name] = await reply(rooms[name].push("ping", {n: name}))
  }
  await until(() => listed("ws").length === 2 && listed("lp").length === 2, "presence of both")
  window.report("joined", {pings})

  // The app is stopped: the next heartbeat goes unanswered.
  await until(() => closes.ws.length > 0, "the heartbeat timeout", stepMs)
  window.report("heartbeat_timeout", {close: closes.ws[0], channel_error: errors.ws[0]})
  const refBeforeTimeout = rooms.ws.joinRef()
  await until(() => joined("ws") && rooms.ws.joinRef() !== refBeforeTimeout, "rejoin after the heartbeat timeout", restartMs)
  window.report("heartbeat_recovered", {ping: await reply(rooms.ws.push("ping", {after: "heartbeat"}))})

  // The app is killed and started again on the same port.
  const closesBefore = {ws: closes.ws.length, lp: closes.lp.length}
  const refs = {ws: rooms.ws.joinRef(), lp: rooms.lp.joinRef()}
  await until(() => closes.ws.length > closesBefore.ws && closes.lp.length > closesBefore.lp, "both sockets closed", restartMs)
  await until(() => ["ws", "lp"].every(name => joined(name) && rooms[name].joinRef() !== refs[name]),
    "both rejoined after the restart", restartMs)
  await until(() => ["ws", "lp"].every(name => listed(name).length === 2), "presence after the restart")
  const after = {}
  for(const name of ["ws", "lp"]){ after[name] = await reply(rooms[name].push("ping", {after: name})) }
  window.report("restarted", {
    closes: {ws: closes.ws.length - closesBefore.ws, lp: closes.lp.length - closesBefore.lp},
    new_join_refs: ["ws", "lp"].every(name => rooms[name].joinRef() !== firstRefs[name]),
    pings: after,
    presence: {ws: listed("ws"), lp: listed("lp")},
    conns: {ws: sockets.ws.conn.constructor.name, lp: sockets.lp.conn.constructor.name},
  })
  for(const socket of Object.values(sockets)){ socket.disconnect() }
}

async function main(){
  const browser = await launchChromium(executablePath)
  try {
    const page = await browser.newPage()
    const pageErrors = []
    page.on("pageerror", error => pageErrors.push(String(error)))
    await page.exposeFunction("report", (check, fields) => emit(check, fields))
    await page.goto(`http://${host}/health`, {timeout: STEP_MS})
    await page.addScriptTag({url: "/alight.js"})
    try {
      await page.evaluate(scenario, {host, stepMs: STEP_MS, restartMs: RESTART_MS, heartbeatMs: 300 * UNIT})
    } catch(error){
      emit("scenario", {error: String(error && error.message || error)})
    }
    emit("done", {page_errors: pageErrors})
  } finally {
    await browser.close()
  }
}

main().then(() => process.exit(0), error => {
  emit("fatal", {error: String(error && error.stack || error)})
  process.exit(1)
})
