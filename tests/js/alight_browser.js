// alight's own browser client (channels/static/alight.js, served by the app at
// /alight.js, and its ES module build at /alight.mjs) inside headless Chromium (driven
// by playwright-core) against the reference app. The assertions are in
// tests/integration/test_alight_js.py.
//
//   node alight_browser.js PAGE_URL MODULE_PAGE_URL APP_HOST:PORT [CHROMIUM]
//
// PAGE_URL is a page whose script tag loads http://APP_HOST:PORT/alight.js;
// MODULE_PAGE_URL one whose module script imports http://APP_HOST:PORT/alight.mjs and
// sets window.imported. Prints one JSON line per part, then {"check": "done"}:
//   "mode:<transport>:<vsn>"  every event of the reference app with three users, over
//                             websocket and longpoll, vsn 2.0.0 and 1.0.0;
//   "backoff"                 the reconnect gaps of a socket whose transport always fails,
//                             and of sockets the app refuses (WebSocket and long-poll);
//   "fallback"                WebSocket refused / mute (through a proxy here) → long-poll,
//                             and a long-poll socket with an auth token;
//   "page"                    what the page logged, and its long-poll requests;
//   "module"                  the ES module build.
"use strict"

const http = require("http")
const {WebSocketServer} = require("ws")

const [pageUrl, modulePageUrl, host, executablePath = "/usr/bin/chromium"] = process.argv.slice(2)
const {UNIT, emit, startDeadline, launchChromium} = require("./_harness")
const STEP_MS = 4000 * UNIT
const DEADLINE_MS = 110000 * UNIT

startDeadline(DEADLINE_MS)

// Runs in the page first: the helpers every part uses, as window.kit.
function installKit({stepMs}){
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
  const opened = socket => within(new Promise(resolve => {
    const ref = socket.onOpen(() => { socket.off([ref]); resolve() })
  }), "socket open")
  const names = presence => presence.list((key, {metas}) => [key, metas.map(m => m.device)])
    .sort((x, y) => x[0] < y[0] ? -1 : 1)
  const same = (x, y) => JSON.stringify(x) === JSON.stringify(y)
  window.kit = {sleep, within, until, reply, opened, names, same, stepMs}
}

// Every event of the reference app, three users, one transport and vsn.
async function modeScenario({host, transport, vsn}){
  const {sleep, within, until, reply, opened, names, same, stepMs} = window.kit
  const {Socket, Presence, LongPoll} = window.alight
  const name = `js-${transport}-${vsn}`
  const topic = `room:${name}`
  const out = {}
  const sent = {alice: []}
  const open = async (user, opts = {}) => {
    const socket = new Socket(`ws://${host}/socket`, {
      params: {user_id: user}, timeout: stepMs, vsn,
      transport: transport === "longpoll" ? LongPoll : window.WebSocket,
      logger: (kind, msg) => { if(kind === "push" && sent[user]){ sent[user].push(msg) } },
      ...opts,
    })
    socket.connect()
    await opened(socket)
    return socket
  }
  const a = await open("alice", {heartbeatIntervalMs: 150})
  const b = await open("bob")
  const c = await open("carol")
  out.url = a.endPointURL()
  out.conn = a.conn.constructor.name

  const users = [["a", a, "chromium-a"], ["b", b, "chromium-b"], ["c", c, "chromium-c"]]
  const seen = {}
  const rooms = {}
  const presences = {}
  for(const [id, socket, device] of users){
    const room = socket.channel(topic, () => ({device}))
    const presence = new Presence(room)
    seen[id] = {shout: [], announce: [], pushed: [], joins: [], leaves: [], errors: 0, closes: 0}
    presence.onJoin((key, current, joined) => seen[id].joins.push([key, current ? "update" : "new", joined.metas.length]))
    presence.onLeave((key, current, left) => seen[id].leaves.push([key, current.metas.length, left.metas.length]))
    for(const event of ["shout", "announce", "pushed"]){ room.on(event, p => seen[id][event].push(p)) }
    room.onError(() => { seen[id].errors++ })
    room.onClose(() => { seen[id].closes++ })
    rooms[id] = room
    presences[id] = presence
  }
  const room = rooms.a
  out.join = await reply(room.join(), "join")
  out.join_b = await reply(rooms.b.join(), "join of bob")
  out.join_c = await reply(rooms.c.join(), "join of carol")

  const forbidden = a.channel("room:forbidden")
  out.join_error = await reply(forbidden.join(), "join error")
  out.forbidden_state = forbidden.state
  forbidden.leave()

  out.ping = await reply(room.push("ping", {from: "alight.js"}), "ping")
  out.error_reply = await reply(room.push("error_reply", {}), "error reply")
  out.user = await reply(room.push("user", {}), "user")
  out.unknown = await reply(room.push("nope", {}), "unknown event")
  out.push_me = await reply(room.push("push_me", {x: 1}), "push_me")
  await until(() => seen.a.pushed.length > 0, "pushed")
  out.pushed = seen.a.pushed
  out.async = await reply(room.push("async", {later: true}), "async reply")
  // Three pushes in one tick (one long-poll POST with vsn 2.0.0).
  out.burst = await Promise.all([1, 2, 3].map(n => reply(room.push("ping", {n}), "burst")))
  if(vsn === "1.0.0"){
    try {
      room.push("binary", new Uint8Array([1]).buffer)
      out.binary = "sent"
    } catch(error){
      out.binary = {thrown: String(error.message)}
    }
  } else if(transport === "websocket"){
    const bin = await reply(room.push("binary", new Uint8Array([1, 2, 3, 250]).buffer), "binary")
    out.binary = {status: bin.status, is_buffer: bin.response instanceof ArrayBuffer,
      bytes: Array.from(new Uint8Array(bin.response))}
  }

  room.push("shout", {msg: "from alight.js"})
  await until(() => ["a", "b", "c"].every(id => seen[id].shout.length > 0), "shouts")
  out.shouts = {a: seen.a.shout, b: seen.b.shout, c: seen.c.shout}

  // The app's HTTP broadcast route (another origin: no-cors, the body still arrives).
  await fetch(`http://${host}/api/broadcast`, {method: "POST", mode: "no-cors",
    body: JSON.stringify({topic, event: "announce", payload: {n: 1}})})
  await until(() => ["a", "b", "c"].every(id => seen[id].announce.length > 0), "announces")
  out.announces = {a: seen.a.announce, b: seen.b.announce, c: seen.c.announce}

  // Presence with three users: everyone sees everyone; carol leaves and both others see it.
  const three = [["alice", ["chromium-a"]], ["bob", ["chromium-b"]], ["carol", ["chromium-c"]]]
  await until(() => ["a", "b", "c"].every(id => same(names(presences[id]), three)), "presence of three users")
  out.presence_three = {a: names(presences.a), b: names(presences.b), c: names(presences.c)}
  out.presence_joins = {a: seen.a.joins.slice(), b: seen.b.joins.slice(), c: seen.c.joins.slice()}
  rooms.c.leave()
  const two = three.slice(0, 2)
  await until(() => same(names(presences.a), two) && same(names(presences.b), two), "carol's leave")
  out.presence_after_leave = {a: names(presences.a), b: names(presences.b)}
  out.presence_leaves = {a: seen.a.leaves.slice(), b: seen.b.leaves.slice()}

  // A crash: phx_error, then a rejoin (with a fresh join ref) about 1 s later.
  const refBeforeCrash = room.joinRef()
  const leavesBeforeCrash = seen.b.leaves.length
  room.push("crash", {})
  await until(() => seen.a.errors > 0, "phx_error of the crashed channel")
  out.state_after_crash = room.state
  await until(() => room.isJoined() && room.joinRef() !== refBeforeCrash, "rejoin after the crash")
  out.crash_rejoin_ping = await reply(room.push("ping", {after: "crash"}), "ping after the crash")
  await until(() => seen.b.leaves.length > leavesBeforeCrash && same(names(presences.b), two), "alice back in bob's presence")
  out.crash_leaves_b = seen.b.leaves.slice(leavesBeforeCrash)

  // The transport drops (closed under the client): reconnect, rejoin, pushes work.
  const refBeforeDrop = room.joinRef()
  const reopened = opened(a)
  a.conn.close()
  await reopened
  await until(() => room.isJoined() && room.joinRef() !== refBeforeDrop, "rejoin after reconnect")
  out.reconnect_ping = await reply(room.push("ping", {after: "reconnect"}), "ping after reconnect")
  out.heartbeats_sent = sent.alice.filter(m => m.startsWith("phoenix heartbeat")).length

  // phx_close (the server stops the channel): closed for good, no rejoin.
  out.stop = await reply(rooms.b.push("stop", {}), "stop")
  await until(() => seen.b.closes > 0, "phx_close")
  await sleep(1500) // past the 1 s a rejoin would take
  out.after_close = {state: rooms.b.state, closes: seen.b.closes, in_socket: b.channels.includes(rooms.b)}

  // leave(): closed at once, removed from the socket.
  room.leave()
  out.after_leave = {state: room.state, in_socket: a.channels.includes(room)}
  for(const socket of [a, b, c]){ socket.disconnect() }
  out.after_disconnect = a.connectionState()
  return out
}

// Backoff with jitter: a transport that always fails at once; the gaps between attempts
// are 200 ms minus up to half of it, at random. Then a server that refuses.
async function backoffScenario({host}){
  const {until} = window.kit
  const attempts = []
  class FailingTransport {
    constructor(){
      attempts.push(performance.now())
      this.readyState = 0
      setTimeout(() => { this.readyState = 3; this.onclose({code: 1006}) }, 0)
    }
    close(){ this.readyState = 3 }
  }
  const failing = new window.alight.Socket("ws://127.0.0.1:9/socket", {transport: FailingTransport, reconnectAfterMs: () => 200})
  failing.connect()
  await until(() => attempts.length >= 6, "six connection attempts")
  failing.disconnect()
  const out = {gaps: attempts.slice(1).map((t, i) => Math.round(t - attempts[i]))}

  // The reference app refuses the connection (token=bad: 403 on the WebSocket upgrade,
  // {"status": 403} over long-poll): the default backoff, with jitter, never a tight loop.
  for(const transport of ["websocket", "longpoll"]){
    const closes = []
    let opens = 0
    const refused = new window.alight.Socket(`ws://${host}/socket`, {
      params: {user_id: "refused", token: "bad"},
      transport: transport === "longpoll" ? window.alight.LongPoll : window.WebSocket,
    })
    refused.onOpen(() => { opens++ })
    refused.onClose(() => closes.push(performance.now()))
    refused.connect()
    await until(() => closes.length >= 6, `six refused ${transport} attempts`)
    refused.disconnect()
    out[transport] = {opens, gaps: closes.slice(1, 6).map((t, i) => Math.round(t - closes[i]))}
  }
  return out
}

// WebSocket → long-poll. `proxy` answers WebSocket upgrades itself (refused, or accepted
// and then mute) and passes every other request to the app.
async function fallbackScenario({proxy}){
  const {reply, opened, stepMs} = window.kit
  const {Socket, LongPoll} = window.alight
  const memory = () => {
    const items = {}
    return {getItem: k => items[k] || null, setItem: (k, v) => { items[k] = String(v) }, items}
  }
  const out = {}
  for(const ws of ["refuse", "mute"]){
    const storage = memory()
    const socket = new Socket(`ws://${proxy}/socket`, {
      params: {user_id: `fallback-${ws}`}, timeout: stepMs, longPollFallbackMs: 300, sessionStorage: storage,
    })
    socket.connect()
    const room = socket.channel(`room:fallback-${ws}`, {device: "fallback"})
    const join = await reply(room.join(), `join after the ${ws} fallback`)
    out[ws] = {
      join, transport: socket.transport === LongPoll ? "LongPoll" : String(socket.transport.name),
      conn: socket.conn.constructor.name,
      ping: await reply(room.push("ping", {n: 1}), "ping over the fallback"),
      remembered: storage.items["phx:fallback:LongPoll"] || null,
    }
    socket.disconnect()
    // A new socket with the same storage goes straight to long-poll.
    const again = new Socket(`ws://${proxy}/socket`, {
      params: {user_id: `fallback-${ws}`}, timeout: stepMs, longPollFallbackMs: 300, sessionStorage: storage,
    })
    again.connect()
    out[ws].first_conn_again = again.conn.constructor.name
    await opened(again)
    again.disconnect()
  }
  // A working WebSocket passes the health check: no fallback, nothing remembered.
  const storage = memory()
  const direct = new Socket(`ws://${window.kit.appHost}/socket`, {
    params: {user_id: "no-fallback"}, longPollFallbackMs: 300, sessionStorage: storage,
  })
  direct.connect()
  const room = direct.channel("room:no-fallback")
  const join = await reply(room.join(), "join over a working WebSocket")
  await window.kit.sleep(600) // past the health check
  out.working = {join, conn: direct.conn.constructor.name, remembered: storage.items["phx:fallback:LongPoll"] || null,
    passed: direct.primaryPassedHealthCheck}
  direct.disconnect()

  // An auth token over long-poll goes in a header of each GET (docs/protocol.md §1.7).
  const authed = new Socket(`ws://${window.kit.appHost}/socket`, {
    params: {user_id: "authed"}, timeout: stepMs, transport: LongPoll, authToken: "secret-token",
  })
  authed.connect()
  const authedRoom = authed.channel("room:authed")
  out.authed = {join: await reply(authedRoom.join(), "join with an auth token"),
    ping: await reply(authedRoom.push("ping", {}), "ping with an auth token")}
  authed.disconnect()
  return out
}

// The ES module build: named exports and the default export, no global.
async function moduleScenario({host}){
  const {reply, opened, stepMs} = window.kit
  const mod = window.imported
  const out = {
    names: Object.keys(mod.named).sort(),
    default_is_namespace: mod.default.Socket === mod.named.Socket && mod.default.LongPoll === mod.named.LongPoll,
    global_alight: typeof window.alight,
  }
  for(const transport of ["websocket", "longpoll"]){
    const socket = new mod.named.Socket(`ws://${host}/socket`, {
      params: {user_id: "module"}, timeout: stepMs,
      transport: transport === "longpoll" ? mod.named.LongPoll : window.WebSocket,
    })
    socket.connect()
    await opened(socket)
    const room = socket.channel(`room:module-${transport}`)
    out[transport] = {join: await reply(room.join(), "join"), ping: await reply(room.push("ping", {m: 1}), "ping")}
    socket.disconnect()
  }
  return out
}

// -- the proxy that blocks WebSockets -------------------------------------------------------

function startProxy(appHost){
  const [appHostname, appPort] = appHost.split(":")
  const mute = new WebSocketServer({noServer: true})
  const server = http.createServer((req, res) => {
    const upstream = http.request({host: appHostname, port: appPort, method: req.method, path: req.url, headers: req.headers},
      answer => { res.writeHead(answer.statusCode, answer.headers); answer.pipe(res) })
    upstream.on("error", () => { res.destroy() })
    req.pipe(upstream)
  })
  server.on("upgrade", (req, socket, head) => {
    if(req.url.includes("fallback-mute")){
      mute.handleUpgrade(req, socket, head, ws => ws.on("message", () => {}))
    } else {
      socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    }
  })
  return new Promise(resolve => server.listen(0, "127.0.0.1", () => resolve(server)))
}

async function main(){
  const proxy = await startProxy(host)
  const proxyHost = `127.0.0.1:${proxy.address().port}`
  const browser = await launchChromium(executablePath)
  const run = async (url, pageCheck, parts) => {
    const page = await browser.newPage()
    const consoleErrors = []
    const longpollRequests = []
    page.on("console", message => { if(message.type() === "error"){ consoleErrors.push(message.text()) } })
    page.on("request", request => {
      if(!/\/socket\/longpoll\?user_id=(alice|authed)&/.test(request.url())){ return }
      const headers = request.headers()
      longpollRequests.push({
        method: request.method(), url: request.url(),
        accept: headers.accept || null, content_type: headers["content-type"] || null,
        auth_token: headers["x-phoenix-authtoken"] || null,
        lines: request.method() === "POST" ? (request.postData() || "").split("\n").length : 0,
      })
    })
    page.on("pageerror", error => consoleErrors.push(String(error)))
    try {
      await page.goto(url, {timeout: STEP_MS})
      await page.waitForFunction(() => window.alight || window.imported, null, {timeout: STEP_MS})
      await page.evaluate(installKit, {stepMs: STEP_MS})
      await page.evaluate(appHost => { window.kit.appHost = appHost }, host)
      for(const [check, fn, arg] of parts){
        try {
          const seen = await page.evaluate(fn, arg)
          emit(check, {...seen, console_errors: consoleErrors.slice()})
        } catch(error){
          emit(check, {error: String(error && error.message || error), console_errors: consoleErrors.slice()})
        }
      }
      emit(pageCheck, {
        has_alight: await page.evaluate(() => typeof window.alight === "object"),
        has_phoenix: await page.evaluate(() => typeof window.Phoenix !== "undefined"),
        user_agent: await page.evaluate(() => navigator.userAgent),
        url, console_errors: consoleErrors, longpoll_requests: longpollRequests,
      })
    } finally {
      await page.close()
    }
  }
  try {
    const modes = []
    for(const transport of ["websocket", "longpoll"]){
      for(const vsn of ["2.0.0", "1.0.0"]){
        modes.push([`mode:${transport}:${vsn}`, modeScenario, {host, transport, vsn}])
      }
    }
    await run(pageUrl, "page", [
      ...modes,
      ["backoff", backoffScenario, {host}],
      ["fallback", fallbackScenario, {proxy: proxyHost}],
    ])
    await run(modulePageUrl, "module_page", [["module", moduleScenario, {host}]])
  } finally {
    await browser.close()
    proxy.closeAllConnections()
    proxy.close()
  }
  emit("done", {})
}

main().then(() => process.exit(0), error => {
  emit("fatal", {error: String(error && error.stack || error)})
  process.exit(1)
})
