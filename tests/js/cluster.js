// Drives the reference app on two clustered nodes (tests/support/testkit/apps/app_node.py) with the
// official phoenix client and prints one JSON line per observation; the assertions are
// in tests/cluster/test_cluster_app.py.
//
//   node cluster.js HOST_A:PORT HOST_B:PORT
//
// Steps: a shout from a client on A reaches a client on B; POST /api/broadcast on A
// reaches B; presence across nodes (each lists the other, a closed socket on A leaves
// B's list); a "disconnect" broadcast to user_socket:carol posted on A closes carol's
// socket on B. Every line is {"t", "check", ...}; a step that does not see what it
// waits for prints an "error".
"use strict"

const {Socket, Presence} = require("phoenix")
const WebSocket = require("ws")

const [hostA, hostB] = process.argv.slice(2)
if(!hostA || !hostB){
  console.error("usage: node cluster.js HOST_A:PORT HOST_B:PORT")
  process.exit(2)
}
const {UNIT, emit, startDeadline, Waiter} = require("./_harness")
const STEP_MS = 5000 * UNIT
const DEADLINE_MS = 30000 * UNIT
const TOPIC = "room:cluster"

startDeadline(DEADLINE_MS)


// A client on `host`: a socket, the room channel, a Presence, and what it received.
function client(host, user){
  const socket = new Socket(`ws://${host}/socket`, {
    params: {user_id: user},
    transport: WebSocket,
    timeout: STEP_MS,
    reconnectAfterMs: () => 60000,
  })
  const channel = socket.channel(TOPIC, {device: host})
  const presence = new Presence(channel)
  const waiter = new Waiter(STEP_MS)
  const rec = {events: [], joined: false, closes: 0, waiter}
  for(const event of ["shout", "news"]){
    channel.on(event, payload => { rec.events.push({event, payload}); waiter.notify() })
  }
  presence.onSync(() => waiter.notify())
  socket.onClose(() => { rec.closes++; waiter.notify() })
  socket.connect()
  channel.join().receive("ok", () => { rec.joined = true; waiter.notify() })
  return {user, socket, channel, presence, rec}
}

const keys = c => c.presence.list(key => key).sort()
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

function listed(c, expected, what){
  return c.rec.waiter.until(() => same(keys(c), expected), `${c.user} to list ${JSON.stringify(expected)} (${what})`)
}

async function post(host, body){
  const response = await fetch(`http://${host}/api/broadcast`, {
    method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body),
  })
  return response.status
}

async function step(name, body){
  try {
    await body()
  } catch(error){
    emit(name, {error: String(error && error.message || error)})
  }
}

async function main(){
  const alice = client(hostA, "alice")
  const bob = client(hostB, "bob")
  let carol

  await step("joined", async () => {
    await alice.rec.waiter.until(() => alice.rec.joined, "alice's join on A")
    await bob.rec.waiter.until(() => bob.rec.joined, "bob's join on B")
    emit("joined", {ok: true})
  })

  await step("presence_join", async () => {
    await listed(bob, ["alice", "bob"], "alice (on A) in B's list")
    await listed(alice, ["alice", "bob"], "bob (on B) in A's list")
    emit("presence_join", {alice: keys(alice), bob: keys(bob)})
  })

  await step("shout", async () => {
    alice.channel.push("shout", {n: 1, from: "alice"})
    await bob.rec.waiter.until(() => bob.rec.events.some(e => e.event === "shout" && e.payload.n === 1),
      "alice's shout on B")
    await alice.rec.waiter.until(() => alice.rec.events.some(e => e.event === "shout" && e.payload.n === 1),
      "alice's own shout")
    emit("shout", {bob: bob.rec.events.filter(e => e.event === "shout")})
  })

  await step("api_broadcast", async () => {
    const status = await post(hostA, {topic: TOPIC, event: "news", payload: {from: "api"}})
    await bob.rec.waiter.until(() => bob.rec.events.some(e => e.event === "news"), "the API broadcast on B")
    emit("api_broadcast", {status, bob: bob.rec.events.filter(e => e.event === "news")})
  })

  await step("presence_leave", async () => {
    alice.socket.disconnect()
    await listed(bob, ["bob"], "alice's socket on A closing")
    emit("presence_leave", {bob: keys(bob)})
  })

  await step("disconnect", async () => {
    carol = client(hostB, "carol")
    await carol.rec.waiter.until(() => carol.rec.joined, "carol's join on B")
    const status = await post(hostA, {topic: "user_socket:carol", event: "disconnect", payload: {}})
    await carol.rec.waiter.until(() => carol.rec.closes > 0, "carol's socket (on B) closed by a broadcast on A")
    emit("disconnect", {status, closes: carol.rec.closes, bob_closes: bob.rec.closes})
  })

  emit("done", {})
  for(const c of [alice, bob, carol]){ if(c){ c.socket.disconnect() } }
  process.exit(0)
}

main().catch(error => {
  emit("main", {error: String(error && error.stack || error)})
  process.exit(1)
})
