// Drives every event of the reference app (examples/reference.py) with the official
// phoenix client and prints one JSON line per observation; the assertions are in
// tests/integration/test_phoenix_js.py.
//
//   node conformance.js HOST:PORT websocket|longpoll 2.0.0|1.0.0
//
// Every line is {"t": ms since start, "check": name, ...what was seen}. A step that
// does not see what it waits for within its bound prints {"check": name, "error": ...}
// and the script goes on; the script as a whole ends within DEADLINE_MS.
"use strict"

const {Socket, LongPoll} = require("phoenix")
const WebSocket = require("ws")

const [host, transport, vsn] = process.argv.slice(2)
if(!host || !["websocket", "longpoll"].includes(transport) || !vsn){
  console.error("usage: node conformance.js HOST:PORT websocket|longpoll VSN")
  process.exit(2)
}
const {UNIT, t0, emit, startDeadline, Waiter} = require("./_harness")
const STEP_MS = 3000 * UNIT
const DEADLINE_MS = 25000 * UNIT

startDeadline(DEADLINE_MS)

// -- helpers ----------------------------------------------------------------------------

function within(promise, what, ms = STEP_MS){
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// A promise and its resolver, for events that callbacks report.
function deferred(){
  let resolve
  const promise = new Promise(r => { resolve = r })
  return {promise, resolve}
}


let sawV1Frame = false

function makeSocket(params, label){
  const opts = {params, vsn, timeout: STEP_MS}
  opts.transport = transport === "websocket" ? WebSocket : LongPoll
  if(vsn.startsWith("1.")){
    // docs/protocol.md §2.2: the client speaks V1 only with JSON encode/decode of its own.
    opts.encode = (msg, callback) => callback(JSON.stringify(msg))
    opts.decode = (raw, callback) => {
      const message = JSON.parse(raw)
      if(!sawV1Frame){
        sawV1Frame = true
        emit("v1_frame", {array: Array.isArray(message), keys: Object.keys(message).sort()})
      }
      callback(message)
    }
  }
  const socket = new Socket(`ws://${host}/socket`, opts)
  const state = {opens: 0, closes: [], errors: [], waiter: new Waiter(STEP_MS)}
  socket.onOpen(() => { state.opens++; state.waiter.notify() })
  socket.onClose(event => {
    state.closes.push(event && event.code !== undefined ? event.code : null)
    state.waiter.notify()
  })
  socket.onError(error => {
    let text
    if(error && typeof error === "object"){ text = error.message || error.type || String(error) } else { text = error }
    state.errors.push(text)
    state.waiter.notify()
  })
  socket.label = label
  socket.state = state
  return socket
}

// A channel whose joins (the first and every rejoin), errors, closes and pushed
// events are recorded.
function makeChannel(socket, topic, params = {}){
  const channel = socket.channel(topic, params)
  const rec = {joins: [], errors: 0, closes: 0, events: [], waiter: new Waiter(STEP_MS)}
  channel.onError(() => { rec.errors++; rec.waiter.notify() })
  channel.onClose(() => { rec.closes++; rec.waiter.notify() })
  channel.rec = rec
  channel.listen = event => channel.on(event, payload => {
    rec.events.push({event, payload, t: Date.now() - t0})
    rec.waiter.notify()
  })
  channel.joinAll = () => {
    channel.join()
      .receive("ok", response => { rec.joins.push({status: "ok", response}); rec.waiter.notify() })
      .receive("error", response => { rec.joins.push({status: "error", response}); rec.waiter.notify() })
      .receive("timeout", () => { rec.joins.push({status: "timeout"}); rec.waiter.notify() })
    return rec.waiter.until(() => rec.joins.length > 0, `join of ${topic}`)
  }
  return channel
}

function push(channel, event, payload){
  return within(new Promise(resolve => {
    channel.push(event, payload)
      .receive("ok", response => resolve({status: "ok", response}))
      .receive("error", response => resolve({status: "error", response}))
      .receive("timeout", () => resolve({status: "timeout"}))
  }), `reply to ${event}`)
}

async function apiBroadcast(topic, event, payload){
  const response = await within(fetch(`http://${host}/api/broadcast`, {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({topic, event, payload}),
  }), "POST /api/broadcast")
  return {status: response.status, body: await response.json()}
}

async function step(name, body){
  try {
    await body()
  } catch(error){
    emit(name, {error: String(error && error.message || error)})
  }
}

// -- the scenario -----------------------------------------------------------------------

async function main(){
  const a = makeSocket({user_id: "u1"}, "a")
  const b = makeSocket({user_id: "u2"}, "b")
  a.connect()
  b.connect()
  await step("open", async () => {
    await a.state.waiter.until(() => a.state.opens > 0, "socket a open")
    await b.state.waiter.until(() => b.state.opens > 0, "socket b open")
    emit("open", {a: a.state.opens, b: b.state.opens})
  })

  const lobby = makeChannel(a, "room:lobby", {device: "node"})
  const lobbyB = makeChannel(b, "room:lobby")
  for(const event of ["shout", "pushed", "news"]){ lobby.listen(event); lobbyB.listen(event) }

  await step("join", async () => {
    await lobby.joinAll()
    await lobbyB.joinAll()
    emit("join", {...lobby.rec.joins[0], other: lobbyB.rec.joins[0]})
  })

  await step("forbidden", async () => {
    const forbidden = makeChannel(a, "room:forbidden")
    await forbidden.joinAll()
    emit("forbidden", forbidden.rec.joins[0])
    forbidden.leave() // no rejoin attempts from here on
  })

  await step("ping", async () => {
    emit("ping", await push(lobby, "ping", {n: 1, text: "héllo"}))
  })

  await step("shout", async () => {
    const before = lobby.rec.events.length
    const beforeB = lobbyB.rec.events.length
    lobby.push("shout", {msg: "hi all"}) // no reply: the push's timeout is not awaited
    const seen = rec => rec.events.slice().filter(e => e.event === "shout")
    await lobby.rec.waiter.until(() => lobby.rec.events.length > before, "shout at the sender")
    await lobbyB.rec.waiter.until(() => lobbyB.rec.events.length > beforeB, "shout at the other socket")
    emit("shout", {sender: seen(lobby.rec).map(e => e.payload), other: seen(lobbyB.rec).map(e => e.payload)})
  })

  await step("error_reply", async () => {
    emit("error_reply", await push(lobby, "error_reply", {}))
  })

  await step("push_me", async () => {
    const order = []
    const ref = lobby.on("pushed", payload => order.push({what: "pushed", payload}))
    const reply = await push(lobby, "push_me", {x: 1})
    order.push({what: "reply", ...reply})
    lobby.off("pushed", ref)
    emit("push_me", {order})
  })

  await step("async", async () => {
    const order = []
    const start = Date.now()
    const asyncReply = push(lobby, "async", {a: 1}).then(r => order.push({what: "async", ms: Date.now() - start, ...r}))
    const pingReply = push(lobby, "ping", {b: 2}).then(r => order.push({what: "ping", ms: Date.now() - start, ...r}))
    await Promise.all([asyncReply, pingReply])
    emit("async", {order})
  })

  await step("user", async () => {
    emit("user", await push(lobby, "user", {}))
  })

  if(transport === "websocket" && vsn.startsWith("2.")){
    await step("binary", async () => {
      const sent = new Uint8Array([0, 1, 2, 127, 128, 255])
      const reply = await push(lobby, "binary", sent.buffer)
      const response = reply.response
      emit("binary", {
        status: reply.status,
        arraybuffer: response instanceof ArrayBuffer,
        bytes: response instanceof ArrayBuffer ? Array.from(new Uint8Array(response)) : response,
      })
    })
  }

  await step("heartbeat", async () => {
    const d = deferred()
    const pushed = a.ping(rtt => d.resolve(rtt))
    const rtt = await within(d.promise, "heartbeat reply")
    emit("heartbeat", {pushed, rtt})
  })

  await step("api_broadcast", async () => {
    const news = rec => rec.events.filter(e => e.event === "news").map(e => e.payload)
    const http = await apiBroadcast("room:lobby", "news", {headline: "hello"})
    await lobby.rec.waiter.until(() => news(lobby.rec).length > 0, "news at socket a")
    await lobbyB.rec.waiter.until(() => news(lobbyB.rec).length > 0, "news at socket b")
    emit("api_broadcast", {http, a: news(lobby.rec), b: news(lobbyB.rec)})
  })

  // `stop` first, then `crash`: the crash's rejoin takes >= 1 s, long enough to see that
  // the stopped channel did not rejoin meanwhile.
  const stopper = makeChannel(a, "room:stopper")
  await step("stop", async () => {
    await stopper.joinAll()
    // The order is recorded in the client's own callbacks, as the frames are handled:
    // promise chains of different lengths would reorder two frames that arrive in one
    // long-poll response.
    const order = []
    stopper.onClose(() => order.push({what: "close"}))
    const reply = within(new Promise(resolve => {
      const record = status => response => { order.push({what: "reply", status, response}); resolve() }
      stopper.push("stop", {})
        .receive("ok", record("ok"))
        .receive("error", record("error"))
        .receive("timeout", () => { order.push({what: "reply", status: "timeout"}); resolve() })
    }), "reply to stop")
    const closed = stopper.rec.waiter.until(() => stopper.rec.closes > 0, "phx_close of the stopped channel")
    await Promise.all([reply, closed])
    emit("stop", {order, state: stopper.state, still_on_socket: a.channels.includes(stopper)})
  })

  await step("crash", async () => {
    const crashy = makeChannel(a, "room:crashy")
    await crashy.joinAll()
    const start = Date.now()
    crashy.push("crash", {})
    await crashy.rec.waiter.until(() => crashy.rec.errors > 0, "phx_error of the crashed channel")
    const errorMs = Date.now() - start
    await crashy.rec.waiter.until(() => crashy.rec.joins.length > 1, "automatic rejoin", 3 * STEP_MS)
    const after = await push(crashy, "ping", {again: true})
    emit("crash", {
      errors: crashy.rec.errors, error_ms: errorMs, rejoin_ms: Date.now() - start,
      joins: crashy.rec.joins, ping_after: after,
    })
  })

  emit("stop_no_rejoin", {joins: stopper.rec.joins.length, state: stopper.state})

  // A user param named `token`: long-poll requests then carry two `token` keys, the
  // session's last, and the last one wins (docs/protocol.md §5.1).
  await step("param_token", async () => {
    const d = makeSocket({user_id: "u4", token: "fine"}, "d")
    try {
      d.connect()
      const room = makeChannel(d, "room:tokens")
      await room.joinAll()
      const first = await push(room, "user", {})
      const second = await push(room, "ping", {n: 2})
      emit("param_token", {join: room.rec.joins[0], user: first, ping: second, opens: d.state.opens})
    } finally {
      d.disconnect()
    }
  })

  await step("refused", async () => {
    const c = makeSocket({user_id: "u3", token: "bad"}, "c")
    const bodies = []
    const realFetch = global.fetch
    if(transport === "longpoll"){
      // The long-poll client reads only the body's status; record what came back.
      global.fetch = async (url, options) => {
        const response = await realFetch(url, options)
        if(String(url).includes("token=bad")){
          const text = await response.clone().text()
          bodies.push({http: response.status, body: text})
        }
        return response
      }
    }
    try {
      c.connect()
      await c.state.waiter.until(() => c.state.errors.length >= 2, "two refused connection attempts")
    } finally {
      c.disconnect()
      global.fetch = realFetch
    }
    emit("refused", {errors: c.state.errors, opens: c.state.opens, bodies})
  })

  await step("disconnect", async () => {
    const opensBefore = a.state.opens
    const closesBefore = a.state.closes.length
    const joinsBefore = lobby.rec.joins.length
    const http = await apiBroadcast("user_socket:u1", "disconnect", {})
    await a.state.waiter.until(() => a.state.closes.length > closesBefore, "socket a closed")
    await a.state.waiter.until(() => a.state.opens > opensBefore, "socket a reopened", 2 * STEP_MS)
    await lobby.rec.waiter.until(() => lobby.rec.joins.length > joinsBefore, "rejoin of room:lobby")
    const after = await push(lobby, "ping", {after: "disconnect"})
    emit("disconnect", {
      http, close_codes: a.state.closes.slice(closesBefore), rejoin: lobby.rec.joins[joinsBefore],
      ping_after: after, b_closes: b.state.closes.length,
    })
  })

  await step("other_unaffected", async () => {
    emit("other_unaffected", {ping: await push(lobbyB, "ping", {still: "here"}), closes: b.state.closes.length})
  })

  a.disconnect()
  b.disconnect()
  emit("done", {})
  // Timers of the client (rejoins, pushes that are never answered) must not keep us.
  setImmediate(() => process.exit(0))
}

main().catch(error => {
  emit("fatal", {error: String(error && error.stack || error)})
  process.exit(1)
})
