// Drives the reference app's presence (examples/reference.py) with the official
// phoenix client's Presence (onSync, onJoin, onLeave, list) and prints one JSON line
// per observation; the assertions are in tests/integration/test_presence_js.py.
//
//   node presence.js HOST:PORT websocket|longpoll
//
// Scenario on one room: two users; one user on two sockets (one key, two metas); a
// leave; a channel crash and its rejoin; a disconnect. Every line is {"t", "check",
// ...what was seen}; a step that does not see what it waits for prints an "error".
"use strict"

const {Socket, LongPoll, Presence} = require("phoenix")
const WebSocket = require("ws")

const [host, transport] = process.argv.slice(2)
if(!host || !["websocket", "longpoll"].includes(transport)){
  console.error("usage: node presence.js HOST:PORT websocket|longpoll")
  process.exit(2)
}
const {UNIT, emit, startDeadline, Waiter} = require("./_harness")
const STEP_MS = 5000 * UNIT
const DEADLINE_MS = 40000 * UNIT
const TOPIC = "room:presence"

startDeadline(DEADLINE_MS)


// A client: a socket, the room channel and a Presence that records every callback.
function client(user, device){
  const socket = new Socket(`ws://${host}/socket`, {
    params: {user_id: user},
    transport: transport === "websocket" ? WebSocket : LongPoll,
    timeout: STEP_MS,
    rejoinAfterMs: () => 50,
    reconnectAfterMs: () => 50,
  })
  const channel = socket.channel(TOPIC, {device})
  const presence = new Presence(channel)
  const rec = {joins: [], leaves: [], syncs: 0, channelJoins: 0, errors: 0, waiter: new Waiter(STEP_MS)}
  presence.onJoin((key, current, joined) => {
    rec.joins.push({key, had: current ? current.metas.length : 0, metas: joined.metas})
    rec.waiter.notify()
  })
  presence.onLeave((key, current, left) => {
    rec.leaves.push({key, remaining: current.metas.length, metas: left.metas})
    rec.waiter.notify()
  })
  presence.onSync(() => { rec.syncs++; rec.waiter.notify() })
  channel.onError(() => { rec.errors++; rec.waiter.notify() })
  socket.connect()
  channel.join().receive("ok", () => { rec.channelJoins++; rec.waiter.notify() })
  return {user, socket, channel, presence, rec}
}

// {key: [device, ...]} as Presence.list sees it, keys sorted.
function view(c){
  const out = {}
  c.presence.list((key, {metas}) => [key, metas.map(m => m.device)])
    .sort(([a], [b]) => a < b ? -1 : 1)
    .forEach(([key, devices]) => { out[key] = devices })
  return out
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

function until(c, expected, what){
  return c.rec.waiter.until(() => same(view(c), expected), `${c.user} to list ${JSON.stringify(expected)} (${what})`)
}

async function step(name, body){
  try {
    await body()
  } catch(error){
    emit(name, {error: String(error && error.message || error)})
  }
}

async function main(){
  const alice = client("alice", "a1")
  let bob
  let alice2

  await step("two_users", async () => {
    await until(alice, {alice: ["a1"]}, "own presence")
    bob = client("bob", "b1")
    await until(bob, {alice: ["a1"], bob: ["b1"]}, "state at join")
    await until(alice, {alice: ["a1"], bob: ["b1"]}, "bob's join")
    const refs = []
    alice.presence.list((key, {metas}) => metas.forEach(m => refs.push(m.phx_ref)))
    emit("two_users", {
      alice: view(alice), bob: view(bob),
      joined: alice.rec.joins.filter(j => j.key === "bob").map(j => j.metas.map(m => m.device)),
      refs,
    })
  })

  await step("two_sockets", async () => {
    alice2 = client("alice", "a2")
    const expected = {alice: ["a1", "a2"], bob: ["b1"]}
    await until(bob, expected, "alice's second socket")
    await until(alice, expected, "alice's second socket")
    await until(alice2, expected, "state of the second socket")
    const join = bob.rec.joins.filter(j => j.key === "alice").pop()
    emit("two_sockets", {bob: view(bob), alice: view(alice), alice2: view(alice2), join})
  })

  await step("leave", async () => {
    const before = bob.rec.leaves.length
    alice2.channel.leave()
    await until(bob, {alice: ["a1"], bob: ["b1"]}, "alice's second socket leaving")
    alice2.socket.disconnect()
    emit("leave", {bob: view(bob), leaves: bob.rec.leaves.slice(before)})
  })

  await step("crash_rejoin", async () => {
    const before = bob.rec.leaves.length
    const beforeJoins = bob.rec.joins.length
    const oldRef = alice.presence.state.alice.metas[0].phx_ref
    alice.channel.push("crash", {})
    await alice.rec.waiter.until(() => alice.rec.errors > 0, "phx_error of the crashed channel")
    await bob.rec.waiter.until(() => bob.rec.leaves.length > before, "alice leaving with the crash")
    await bob.rec.waiter.until(
      () => bob.rec.joins.slice(beforeJoins).some(j => j.key === "alice"), "alice back after the rejoin")
    await until(alice, {alice: ["a1"], bob: ["b1"]}, "own list after the rejoin")
    emit("crash_rejoin", {
      bob: view(bob), alice: view(alice),
      left: bob.rec.leaves.slice(before).map(l => l.key),
      rejoins: alice.rec.channelJoins,
      newRef: alice.presence.state.alice.metas[0].phx_ref !== oldRef,
    })
  })

  await step("disconnect", async () => {
    if(transport === "longpoll"){
      // The server only notices a long-poll client that went away when its session
      // times out (docs/protocol.md §5, ~10-20 s): checked over WebSocket only.
      emit("disconnect", {skipped: "long-poll sessions end by inactivity"})
      return
    }
    const before = alice.rec.leaves.length
    bob.socket.disconnect()
    await until(alice, {alice: ["a1"]}, "bob's disconnect")
    emit("disconnect", {alice: view(alice), leaves: alice.rec.leaves.slice(before).map(l => [l.key, l.remaining])})
  })

  emit("done", {})
  for(const c of [alice, bob, alice2]){ if(c){ c.socket.disconnect() } }
  process.exit(0)
}

main().catch(error => {
  emit("main", {error: String(error && error.stack || error)})
  process.exit(1)
})
