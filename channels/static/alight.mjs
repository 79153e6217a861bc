// alight.mjs: the ES module build of alight.js (the same source; see /alight.js).
const alight = (function (root) {
  "use strict"

  var VSN = "2.0.0"
  var DEFAULT_TIMEOUT = 10000
  var WS_CLOSE_NORMAL = 1000
  var AUTH_TOKEN_PREFIX = "base64url.bearer.phx."
  var MAX_LONGPOLL_BATCH = 100
  var FALLBACK_KEY = "phx:fallback:LongPoll"
  var SOCKET_STATES = { connecting: 0, open: 1, closing: 2, closed: 3 }
  var EVENTS = {
    close: "phx_close",
    error: "phx_error",
    join: "phx_join",
    reply: "phx_reply",
    leave: "phx_leave",
  }
  var LIFECYCLE = [EVENTS.close, EVENTS.error, EVENTS.join, EVENTS.reply, EVENTS.leave]
  var STATES = { closed: "closed", errored: "errored", joined: "joined", joining: "joining", leaving: "leaving" }

  function closure(value) {
    return typeof value === "function" ? value : function () { return value }
  }

  function noop() {}

  function clone(obj) {
    return JSON.parse(JSON.stringify(obj))
  }

  // Calls `callback` once `done()` holds: checked now and again after waits of 150, 300
  // and 450 ms; after a last wait of 600 ms, called anyway.
  function waitFor(done, callback, tries) {
    tries = tries || 1
    if (tries === 5 || done()) return callback()
    setTimeout(function () { waitFor(done, callback, tries + 1) }, 150 * tries)
  }

  // -- query strings (phoenix's rules: nested keys in brackets, vsn last) ----------------

  function serialize(obj, parentKey) {
    var parts = []
    Object.keys(obj).forEach(function (key) {
      var value = obj[key]
      var name = parentKey ? parentKey + "[" + key + "]" : key
      if (value !== null && typeof value === "object") {
        parts.push(serialize(value, name))
      } else if (value === null) {
        parts.push("")
      } else {
        parts.push(encodeURIComponent(name) + "=" + encodeURIComponent(value))
      }
    })
    return parts.join("&")
  }

  function appendParams(url, params) {
    if (Object.keys(params).length === 0) return url
    var prefix = url.indexOf("?") >= 0 ? "&" : "?"
    return url + prefix + serialize(params)
  }

  // -- backoff timer --------------------------------------------------------------------

  // Calls `callback` after `timerCalc(tries)` ms; each schedule counts one more try until
  // `reset`. `jitter` (0..1) takes up to that fraction off each delay at random, so that
  // many clients dropped together do not all come back in the same millisecond.
  function Timer(callback, timerCalc, jitter) {
    this.callback = callback
    this.timerCalc = timerCalc
    this.jitter = jitter || 0
    this.timer = null
    this.tries = 0
  }
  Timer.prototype.reset = function () {
    this.tries = 0
    clearTimeout(this.timer)
    this.timer = null
  }
  Timer.prototype.scheduleTimeout = function () {
    var self = this
    clearTimeout(this.timer)
    var delay = this.timerCalc(this.tries + 1)
    if (this.jitter > 0) delay = delay * (1 - this.jitter * Math.random())
    this.timer = setTimeout(function () {
      self.tries = self.tries + 1
      self.callback()
    }, delay)
  }

  // -- serializer (vsn 2.0.0: JSON arrays, binary frames) -------------------------------

  var KIND_PUSH = 0
  var KIND_REPLY = 1
  var KIND_BROADCAST = 2
  var HEADER_LENGTH = 1
  var META_LENGTH = 4

  var Serializer = {
    encode: function (msg, callback) {
      if (isBinary(msg.payload)) {
        return callback(this.binaryEncode(msg))
      }
      return callback(JSON.stringify([msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload]))
    },
    decode: function (raw, callback) {
      if (raw && raw.constructor === ArrayBuffer) {
        return callback(this.binaryDecode(raw))
      }
      var arr = JSON.parse(raw)
      return callback({ join_ref: arr[0], ref: arr[1], topic: arr[2], event: arr[3], payload: arr[4] })
    },
    binaryEncode: function (msg) {
      var enc = new TextEncoder()
      var fields = [String(msg.join_ref), String(msg.ref), msg.topic, msg.event].map(function (s) {
        var bytes = enc.encode(s)
        if (bytes.length > 255) throw new Error("binary frame field too long: " + s)
        return bytes
      })
      var metaLength = META_LENGTH + fields.reduce(function (n, f) { return n + f.length }, 0)
      var header = new Uint8Array(HEADER_LENGTH + metaLength)
      header[0] = KIND_PUSH
      var offset = 1
      fields.forEach(function (f) { header[offset++] = f.length })
      fields.forEach(function (f) { header.set(f, offset); offset += f.length })
      var payload = new Uint8Array(msg.payload)
      var out = new Uint8Array(header.length + payload.length)
      out.set(header, 0)
      out.set(payload, header.length)
      return out.buffer
    },
    binaryDecode: function (buffer) {
      var view = new DataView(buffer)
      var dec = new TextDecoder()
      var kind = view.getUint8(0)
      var offset
      var read = function (len) {
        var s = dec.decode(buffer.slice(offset, offset + len))
        offset += len
        return s
      }
      if (kind === KIND_PUSH) {
        var jrLen = view.getUint8(1), tLen = view.getUint8(2), eLen = view.getUint8(3)
        offset = 4
        var joinRef = read(jrLen), topic = read(tLen), event = read(eLen)
        return { join_ref: joinRef, ref: null, topic: topic, event: event, payload: buffer.slice(offset) }
      }
      if (kind === KIND_REPLY) {
        var rjLen = view.getUint8(1), rLen = view.getUint8(2), rtLen = view.getUint8(3), sLen = view.getUint8(4)
        offset = 5
        var rJoinRef = read(rjLen), ref = read(rLen), rTopic = read(rtLen), status = read(sLen)
        return {
          join_ref: rJoinRef, ref: ref, topic: rTopic, event: EVENTS.reply,
          payload: { status: status, response: buffer.slice(offset) },
        }
      }
      if (kind === KIND_BROADCAST) {
        var bTLen = view.getUint8(1), bELen = view.getUint8(2)
        offset = 3
        var bTopic = read(bTLen), bEvent = read(bELen)
        return { join_ref: null, ref: null, topic: bTopic, event: bEvent, payload: buffer.slice(offset) }
      }
      throw new Error("unknown binary frame kind " + kind)
    },
  }

  // -- serializer (vsn 1.0.0) -------------------------------------------------------------

  // V1 frames are JSON objects; the server never sends `join_ref` in them. V1 has no
  // binary frames: pushing an ArrayBuffer on a vsn 1.0.0 socket throws (Channel.push).
  var SerializerV1 = {
    encode: function (msg, callback) {
      return callback(JSON.stringify({
        topic: msg.topic, event: msg.event, payload: msg.payload, ref: msg.ref, join_ref: msg.join_ref,
      }))
    },
    decode: function (raw, callback) {
      var obj = JSON.parse(raw)
      return callback({
        join_ref: obj.join_ref === undefined ? null : obj.join_ref,
        ref: obj.ref, topic: obj.topic, event: obj.event, payload: obj.payload,
      })
    },
  }

  function isBinary(payload) {
    return !!payload && payload.constructor === ArrayBuffer
  }

  // -- Push -----------------------------------------------------------------------------

  function Push(channel, event, payload, timeout) {
    this.channel = channel
    this.event = event
    this.payload = closure(payload || {})
    this.receivedResp = null
    this.timeout = timeout
    this.timeoutTimer = null
    this.recHooks = []
    this.sent = false
    this.ref = null
    this.refEvent = null
  }
  Push.prototype.resend = function (timeout) {
    this.timeout = timeout
    this.reset()
    this.send()
  }
  Push.prototype.send = function () {
    if (this.hasReceived("timeout")) return
    this.startTimeout()
    this.sent = true
    this.channel.socket.push({
      topic: this.channel.topic,
      event: this.event,
      payload: this.payload(),
      ref: this.ref,
      join_ref: this.channel.joinRef(),
    })
  }
  Push.prototype.receive = function (status, callback) {
    if (this.hasReceived(status)) callback(this.receivedResp.response)
    this.recHooks.push({ status: status, callback: callback })
    return this
  }
  Push.prototype.reset = function () {
    this.cancelRefEvent()
    this.ref = null
    this.refEvent = null
    this.receivedResp = null
    this.sent = false
  }
  Push.prototype.matchReceive = function (resp) {
    this.recHooks
      .filter(function (h) { return h.status === resp.status })
      .forEach(function (h) { h.callback(resp.response) })
  }
  Push.prototype.cancelRefEvent = function () {
    if (this.refEvent) this.channel.off(this.refEvent)
  }
  Push.prototype.cancelTimeout = function () {
    clearTimeout(this.timeoutTimer)
    this.timeoutTimer = null
  }
  // A new ref and reply binding for each send; the previous ref's binding goes (a push
  // buffered before the join gets a ref at once, then another when it is sent).
  Push.prototype.startTimeout = function () {
    var self = this
    if (this.timeoutTimer) this.cancelTimeout()
    this.cancelRefEvent()
    this.ref = this.channel.socket.makeRef()
    this.refEvent = this.channel.replyEventName(this.ref)
    this.channel.on(this.refEvent, function (payload) {
      self.cancelRefEvent()
      self.cancelTimeout()
      self.receivedResp = payload
      self.matchReceive(payload)
    })
    this.timeoutTimer = setTimeout(function () { self.trigger("timeout", {}) }, this.timeout)
  }
  Push.prototype.hasReceived = function (status) {
    return !!(this.receivedResp && this.receivedResp.status === status)
  }
  Push.prototype.trigger = function (status, response) {
    this.channel.trigger(this.refEvent, { status: status, response: response })
  }

  // -- Channel --------------------------------------------------------------------------

  function Channel(topic, params, socket) {
    var self = this
    this.state = STATES.closed
    this.topic = topic
    this.params = closure(params || {})
    this.socket = socket
    this.bindings = []
    this.bindingRef = 0
    this.timeout = socket.timeout
    this.joinedOnce = false
    this.joinPush = new Push(this, EVENTS.join, this.params, this.timeout)
    this.pushBuffer = []
    this.stateChangeRefs = []
    this.rejoinTimer = new Timer(function () {
      if (self.socket.isConnected()) self.rejoin()
    }, socket.rejoinAfterMs)
    this.stateChangeRefs.push(socket.onError(function () { self.rejoinTimer.reset() }))
    this.stateChangeRefs.push(
      socket.onOpen(function () {
        self.rejoinTimer.reset()
        if (self.isErrored()) self.rejoin()
      })
    )
    this.joinPush.receive("ok", function () {
      self.state = STATES.joined
      self.rejoinTimer.reset()
      self.pushBuffer.forEach(function (p) { p.send() })
      self.pushBuffer = []
    })
    this.joinPush.receive("error", function () {
      self.state = STATES.errored
      if (self.socket.isConnected()) self.rejoinTimer.scheduleTimeout()
    })
    this.onClose(function () {
      self.rejoinTimer.reset()
      self.state = STATES.closed
      self.socket.remove(self)
    })
    this.onError(function () {
      if (self.isLeaving() || self.isClosed()) return
      if (self.isJoining()) self.joinPush.reset()
      self.state = STATES.errored
      if (self.socket.isConnected()) self.rejoinTimer.scheduleTimeout()
    })
    this.joinPush.receive("timeout", function () {
      var leavePush = new Push(self, EVENTS.leave, closure({}), self.timeout)
      leavePush.send()
      self.state = STATES.errored
      self.joinPush.reset()
      if (self.socket.isConnected()) self.rejoinTimer.scheduleTimeout()
    })
    this.on(EVENTS.reply, function (payload, ref) {
      self.trigger(self.replyEventName(ref), payload)
    })
  }
  Channel.prototype.join = function (timeout) {
    if (this.joinedOnce) {
      throw new Error("tried to join multiple times. 'join' can only be called a single time per channel instance")
    }
    this.timeout = timeout === undefined ? this.timeout : timeout
    this.joinedOnce = true
    this.rejoin()
    return this.joinPush
  }
  Channel.prototype.onClose = function (callback) {
    return this.on(EVENTS.close, callback)
  }
  Channel.prototype.onError = function (callback) {
    return this.on(EVENTS.error, function (reason) { callback(reason) })
  }
  Channel.prototype.on = function (event, callback) {
    var ref = this.bindingRef++
    this.bindings.push({ event: event, ref: ref, callback: callback })
    return ref
  }
  Channel.prototype.off = function (event, ref) {
    this.bindings = this.bindings.filter(function (b) {
      return !(b.event === event && (ref === undefined || ref === b.ref))
    })
  }
  Channel.prototype.canPush = function () {
    return this.socket.isConnected() && this.isJoined()
  }
  Channel.prototype.push = function (event, payload, timeout) {
    payload = payload || {}
    if (!this.joinedOnce) {
      throw new Error("tried to push '" + event + "' to '" + this.topic + "' before joining. Use channel.join() before pushing events")
    }
    if (isBinary(payload) && !this.socket.binarySupported) {
      throw new Error("tried to push binary '" + event + "' on a vsn " + this.socket.vsn + " socket. Binary payloads need vsn 2.0.0")
    }
    var push = new Push(this, event, function () { return payload }, timeout === undefined ? this.timeout : timeout)
    if (this.canPush()) {
      push.send()
    } else {
      push.startTimeout()
      // Pushes that timed out in the buffer are never sent: they go now, so that a
      // channel that stays unjoined holds only the pushes still within their timeout.
      this.pushBuffer = this.pushBuffer.filter(function (p) { return !p.hasReceived("timeout") })
      this.pushBuffer.push(push)
    }
    return push
  }
  Channel.prototype.leave = function (timeout) {
    var self = this
    timeout = timeout === undefined ? this.timeout : timeout
    this.rejoinTimer.reset()
    this.joinPush.cancelTimeout()
    this.state = STATES.leaving
    var onClose = function () { self.trigger(EVENTS.close, "leave") }
    var leavePush = new Push(this, EVENTS.leave, closure({}), timeout)
    leavePush.receive("ok", onClose).receive("timeout", onClose)
    leavePush.send()
    if (!this.canPush()) leavePush.trigger("ok", {})
    return leavePush
  }
  Channel.prototype.onMessage = function (event, payload) {
    return payload
  }
  Channel.prototype.isMember = function (topic, event, payload, joinRef) {
    if (this.topic !== topic) return false
    if (joinRef && joinRef !== this.joinRef()) return false
    return true
  }
  Channel.prototype.joinRef = function () {
    return this.joinPush.ref
  }
  Channel.prototype.rejoin = function (timeout) {
    if (this.isLeaving()) return
    this.socket.leaveOpenTopic(this.topic)
    this.state = STATES.joining
    this.joinPush.resend(timeout === undefined ? this.timeout : timeout)
  }
  Channel.prototype.trigger = function (event, payload, ref, joinRef) {
    var handled = this.onMessage(event, payload, ref, joinRef)
    if (payload && !handled) {
      throw new Error("channel onMessage callbacks must return the payload, modified or unmodified")
    }
    var bindings = this.bindings.filter(function (b) { return b.event === event })
    for (var i = 0; i < bindings.length; i++) {
      bindings[i].callback(handled, ref, joinRef || this.joinRef())
    }
  }
  Channel.prototype.replyEventName = function (ref) {
    return "chan_reply_" + ref
  }
  Channel.prototype.isClosed = function () { return this.state === STATES.closed }
  Channel.prototype.isErrored = function () { return this.state === STATES.errored }
  Channel.prototype.isJoined = function () { return this.state === STATES.joined }
  Channel.prototype.isJoining = function () { return this.state === STATES.joining }
  Channel.prototype.isLeaving = function () { return this.state === STATES.leaving }

  // -- HTTP requests for LongPoll -------------------------------------------------------

  function parseJSON(text) {
    if (!text) return null
    try {
      return JSON.parse(text)
    } catch (_error) {
      return null
    }
  }

  // One HTTP request; `callback(body)` gets the parsed JSON body, or null when the request
  // failed or the body is not JSON; `onTimeout()` runs instead after `timeout` ms.
  // Returns an object with `abort()`. XMLHttpRequest in pages, fetch where there is none.
  function request(method, url, headers, body, timeout, onTimeout, callback) {
    if (root.XMLHttpRequest) {
      var req = new root.XMLHttpRequest()
      req.open(method, url, true)
      req.timeout = timeout
      Object.keys(headers).forEach(function (key) { req.setRequestHeader(key, headers[key]) })
      req.onload = function () { callback(parseJSON(req.responseText)) }
      req.onerror = function () { callback(null) }
      req.ontimeout = onTimeout
      req.send(body)
      return req
    }
    var controller = new root.AbortController()
    var timedOut = false
    var timer = setTimeout(function () { timedOut = true; controller.abort() }, timeout)
    root.fetch(url, { method: method, headers: headers, body: body, signal: controller.signal })
      .then(function (response) { return response.text() })
      .then(
        function (text) { clearTimeout(timer); callback(parseJSON(text)) },
        function () { clearTimeout(timer); if (timedOut) onTimeout(); else callback(null) }
      )
    return { abort: function () { clearTimeout(timer); controller.abort() } }
  }

  function arrayBufferToBase64(buffer) {
    var bytes = new Uint8Array(buffer)
    var binary = ""
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i])
    return btoa(binary)
  }

  // -- LongPoll -------------------------------------------------------------------------

  // The long-poll transport, with a WebSocket's interface (readyState, send, close,
  // onopen/onerror/onmessage/onclose) so that the Socket drives both alike:
  // `new alight.Socket("/socket", {transport: alight.LongPoll})`, or picked by the
  // fallback (`longPollFallbackMs`). Wire behaviour of phoenix.js 1.8 (docs/protocol.md §5):
  // one GET in flight (`/longpoll?...&token=T`); a `410` without a session token yet
  // opens the transport, one with a token means the session is gone (close 3410 and
  // reconnect); `200` delivers each message in its own macrotask; `403` closes with 1008
  // (the socket retries with its backoff). Sends made in one tick go in one POST
  // (`application/x-ndjson`, at most 100 lines, binary frames as base64 lines), one POST
  // in flight. A vsn 1.0.0 frame (a JSON object, which ndjson would read as base64) goes
  // alone in a POST as `application/json`. No heartbeats: the server ends a session
  // that stops polling. Unlike phoenix.js, `disconnect` waits (bounded) for the sends
  // not yet acknowledged (`bufferedAmount`), as it does for a WebSocket.
  function LongPoll(endPoint, protocols) {
    var self = this
    if (protocols && protocols.length === 2 && protocols[1].indexOf(AUTH_TOKEN_PREFIX) === 0) {
      this.authToken = atob(protocols[1].slice(AUTH_TOKEN_PREFIX.length))
    }
    this.token = null
    this.skipHeartbeat = true
    this.timeout = 20000 // the Socket sets its `longpollerTimeout`
    this.requests = []
    this.messageTimers = []
    this.outbox = []
    this.posting = false
    this.postingLines = 0
    this.flushTimer = null
    this.onopen = noop
    this.onerror = noop
    this.onmessage = noop
    this.onclose = noop
    this.pollEndpoint = LongPoll.normalizeEndpoint(endPoint)
    this.readyState = SOCKET_STATES.connecting
    // The first poll waits a tick, for the caller to set the callbacks (or close us).
    setTimeout(function () { self.poll() }, 0)
  }
  LongPoll.normalizeEndpoint = function (endPoint) {
    var url = endPoint.replace("ws://", "http://").replace("wss://", "https://")
    var at = url.lastIndexOf("/websocket")
    return at < 0 ? url : url.slice(0, at) + "/longpoll" + url.slice(at + "/websocket".length)
  }
  LongPoll.prototype.endpointURL = function () {
    // no token yet: a bare trailing "&", as phoenix.js sends it
    return appendParams(this.pollEndpoint, { token: this.token })
  }
  LongPoll.prototype.isActive = function () {
    return this.readyState === SOCKET_STATES.open || this.readyState === SOCKET_STATES.connecting
  }
  LongPoll.prototype.poll = function () {
    var self = this
    if (!this.isActive()) return
    var headers = { Accept: "application/json" }
    if (this.authToken) headers["X-Phoenix-AuthToken"] = this.authToken
    this.ajax("GET", headers, null, function (resp) {
      var status = resp ? resp.status : 0
      if (status === 410 && self.token !== null) {
        // The session we had is gone: fail, so that the socket reconnects and rejoins.
        return self.closeAndRetry(410, 3410, "session_gone")
      }
      if (resp && typeof resp.token === "string") self.token = resp.token
      switch (status) {
        case 200:
          (resp.messages || []).forEach(function (msg) { self.deliver(msg) })
          return self.poll()
        case 204:
          return self.poll()
        case 410:
          self.readyState = SOCKET_STATES.open
          self.onopen({})
          return self.poll()
        case 403:
          self.onerror(403)
          return self.close(1008, "forbidden", false)
        case 0:
        case 500:
          return self.closeAndRetry(500, 1011, "internal server error")
        default:
          // phoenix.js throws here (and stops polling); reconnecting is the useful outcome.
          return self.closeAndRetry(status, 1011, "unhandled poll status " + status)
      }
    })
  }
  // Each message in its own macrotask, as WebSocket messages arrive, so that the promise
  // callbacks one message resolves run before the next message.
  LongPoll.prototype.deliver = function (msg) {
    var self = this
    var timer = setTimeout(function () {
      self.messageTimers = self.messageTimers.filter(function (t) { return t !== timer })
      self.onmessage({ data: msg })
    }, 0)
    this.messageTimers.push(timer)
  }
  LongPoll.prototype.send = function (body) {
    var self = this
    this.outbox.push(typeof body === "string" ? body : arrayBufferToBase64(body))
    if (!this.posting && !this.flushTimer) {
      this.flushTimer = setTimeout(function () {
        self.flushTimer = null
        self.flush()
      }, 0)
    }
  }
  LongPoll.prototype.flush = function () {
    var self = this
    if (this.posting || this.outbox.length === 0 || !this.isActive()) return
    var count = 1
    var contentType = "application/json"
    if (this.outbox[0].charAt(0) !== "{") {
      contentType = "application/x-ndjson"
      while (count < this.outbox.length && count < MAX_LONGPOLL_BATCH && this.outbox[count].charAt(0) !== "{") count++
    }
    var lines = this.outbox.slice(0, count)
    this.outbox = this.outbox.slice(count)
    this.posting = true
    this.postingLines = lines.length
    this.ajax("POST", { "Content-Type": contentType }, lines.join("\n"), function (resp) {
      if (!resp || resp.status !== 200) return self.closeAndRetry(resp && resp.status, 1011, "internal server error")
      self.posting = false
      self.postingLines = 0
      self.flush()
    })
  }
  // Frames sent but not yet acknowledged by the server (queued, or in the POST in
  // flight), as a WebSocket's `bufferedAmount` counts bytes not yet sent: the socket's
  // `disconnect` waits (bounded) for it to reach 0, so that a leave just before a
  // disconnect reaches the server instead of waiting for the idle session to end.
  Object.defineProperty(LongPoll.prototype, "bufferedAmount", {
    get: function () { return this.outbox.length + this.postingLines },
  })
  LongPoll.prototype.close = function (code, reason, wasClean) {
    this.stop(SOCKET_STATES.closed)
    this.emitClose(code, reason, wasClean)
  }
  // Fails like a WebSocket that dropped: error, then close. The transport is no longer
  // open when the callbacks run, but "connecting", so that they can still close it.
  LongPoll.prototype.closeAndRetry = function (error, code, reason) {
    if (!this.isActive()) return
    this.stop(SOCKET_STATES.connecting)
    this.onerror(error)
    if (this.isActive()) this.emitClose(code, reason, false)
  }
  LongPoll.prototype.ontimeout = function () {
    this.closeAndRetry("timeout", 1005, "timeout")
  }
  // Cancels the requests in flight, the messages not yet delivered and the queued sends.
  LongPoll.prototype.stop = function (readyState) {
    this.readyState = readyState
    var requests = this.requests
    this.requests = [] // no longer ours: their callbacks are ignored
    requests.forEach(function (entry) { if (entry.req) entry.req.abort() })
    this.messageTimers.forEach(function (timer) { clearTimeout(timer) })
    this.messageTimers = []
    clearTimeout(this.flushTimer)
    this.flushTimer = null
    this.outbox = []
    this.posting = false
    this.postingLines = 0
  }
  LongPoll.prototype.emitClose = function (code, reason, wasClean) {
    var event = { code: code || 1005, reason: reason || "", wasClean: wasClean === undefined ? true : wasClean }
    this.onclose(typeof CloseEvent !== "undefined" ? new CloseEvent("close", event) : event)
  }
  LongPoll.prototype.ajax = function (method, headers, body, callback) {
    var self = this
    var entry = { req: null }
    var own = function () {
      var at = self.requests.indexOf(entry)
      if (at >= 0) self.requests.splice(at, 1)
      return at >= 0
    }
    this.requests.push(entry)
    entry.req = request(method, this.endpointURL(), headers, body, this.timeout,
      function () { if (own()) self.ontimeout() },
      function (resp) { if (own()) callback(resp) })
  }

  // -- Socket ---------------------------------------------------------------------------

  function defaultSessionStorage() {
    try {
      return root.sessionStorage || null
    } catch (_error) {
      return null // a sandboxed frame may not touch it
    }
  }

  // `new Socket(endPoint, opts)`: the options of phoenix.js's Socket: params, timeout,
  // transport (default: WebSocket, or LongPoll where there is none), longPollFallbackMs,
  // longpollerTimeout, heartbeatIntervalMs, reconnectAfterMs, rejoinAfterMs, logger,
  // encode/decode, binaryType, vsn, authToken, sessionStorage; plus reconnectJitter.
  function Socket(endPoint, opts) {
    var self = this
    opts = opts || {}
    this.stateChangeCallbacks = { open: [], close: [], error: [], message: [] }
    this.channels = []
    this.sendBuffer = []
    this.ref = 0
    this.timeout = opts.timeout || DEFAULT_TIMEOUT
    this.transport = opts.transport || root.WebSocket || LongPoll
    this.longPollFallbackMs = opts.longPollFallbackMs
    this.longpollerTimeout = opts.longpollerTimeout || 20000
    this.sessionStore = opts.sessionStorage || defaultSessionStorage()
    this.fallbackTimer = null
    this.fallbackRefs = []
    this.primaryPassedHealthCheck = false
    this.vsn = opts.vsn || VSN
    // vsn 1.0.0 speaks JSON objects; phoenix.js needs custom encode/decode for that.
    var serializer = /^1\./.test(this.vsn) ? SerializerV1 : Serializer
    this.binarySupported = serializer === Serializer || !!opts.encode
    this.encode = opts.encode || function (msg, cb) { return serializer.encode(msg, cb) }
    this.decode = opts.decode || function (raw, cb) { return serializer.decode(raw, cb) }
    this.binaryType = opts.binaryType || "arraybuffer"
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs || 30000
    this.rejoinAfterMs = function (tries) {
      if (opts.rejoinAfterMs) return opts.rejoinAfterMs(tries)
      return [1000, 2000, 5000][tries - 1] || 10000
    }
    this.reconnectAfterMs = function (tries) {
      if (opts.reconnectAfterMs) return opts.reconnectAfterMs(tries)
      return [10, 50, 100, 150, 200, 250, 500, 1000, 2000][tries - 1] || 5000
    }
    this.reconnectJitter = opts.reconnectJitter === undefined ? 0.5 : opts.reconnectJitter
    this.logger = opts.logger || null
    this.params = closure(opts.params || {})
    this.endPoint = endPoint + "/websocket"
    this.authToken = opts.authToken && closure(opts.authToken)
    this.heartbeatTimer = null
    this.heartbeatTimeoutTimer = null
    this.pendingHeartbeatRef = null
    this.pings = {}
    this.closeWasClean = false
    this.conn = null
    this.reconnectTimer = new Timer(
      function () { self.teardown(function () { self.connect() }) },
      this.reconnectAfterMs,
      this.reconnectJitter
    )
  }
  Socket.prototype.getLongPollTransport = function () { return LongPoll }
  Socket.prototype.protocol = function () {
    return root.location && root.location.protocol.match(/^https/) ? "wss" : "ws"
  }
  Socket.prototype.endPointURL = function () {
    var uri = appendParams(appendParams(this.endPoint, this.params()), { vsn: this.vsn })
    if (uri.charAt(0) !== "/") return uri
    if (uri.charAt(1) === "/") return this.protocol() + ":" + uri
    return this.protocol() + "://" + root.location.host + uri
  }
  Socket.prototype.log = function (kind, msg, data) {
    if (this.logger) this.logger(kind, msg, data)
  }
  Socket.prototype.hasLogger = function () {
    return this.logger !== null
  }
  Socket.prototype.connect = function (params) {
    if (params) this.params = closure(params)
    if (this.conn) return
    if (this.longPollFallbackMs && this.transport !== LongPoll) {
      this.connectWithFallback(LongPoll, this.longPollFallbackMs)
    } else {
      this.transportConnect()
    }
  }
  Socket.prototype.transportConnect = function () {
    var self = this
    this.closeWasClean = false
    var protocols
    if (this.authToken) {
      protocols = ["phoenix", AUTH_TOKEN_PREFIX + btoa(this.authToken()).replace(/=/g, "")]
    }
    var url = this.endPointURL()
    var conn = protocols ? new this.transport(url, protocols) : new this.transport(url)
    this.conn = conn
    conn.binaryType = this.binaryType
    conn.timeout = this.longpollerTimeout
    // Events of a connection the socket has given up on (replaced, torn down) are ignored.
    conn.onopen = function () { if (self.conn === conn) self.onConnOpen() }
    conn.onerror = function (error) { if (self.conn === conn) self.onConnError(error) }
    conn.onmessage = function (event) { if (self.conn === conn) self.onConnMessage(event) }
    conn.onclose = function (event) { if (self.conn === conn) self.onConnClose(event) }
  }

  // WebSocket first; long-poll if it errors before opening, or if it opens but does not
  // answer a ping within `ms` (a proxy that lets the upgrade through and then nothing).
  // A fallback that connects is remembered for the session (sessionStorage), so that the
  // next page goes straight to long-poll, unless a WebSocket has passed the check before.
  Socket.prototype.connectWithFallback = function (fallbackTransport, ms) {
    var self = this
    this.cancelFallback()
    var established = false
    var primary = true
    var fallback = function (reason) {
      self.log("transport", "falling back to LongPoll...", reason)
      primary = false
      self.off([errorRef])
      self.replaceTransport(fallbackTransport)
      self.transportConnect()
    }
    var errorRef = this.onError(function (reason) {
      if (primary && !established) {
        clearTimeout(self.fallbackTimer)
        fallback(reason)
      }
    })
    var openRef = this.onOpen(function () {
      if (!primary) {
        if (!self.primaryPassedHealthCheck) self.storeSession(FALLBACK_KEY, "true")
        self.log("transport", "established LongPoll fallback")
        return
      }
      established = true
      clearTimeout(self.fallbackTimer)
      self.fallbackTimer = setTimeout(fallback, ms)
      self.ping(function (rtt) {
        self.log("transport", "connected to primary after", rtt)
        self.primaryPassedHealthCheck = true
        clearTimeout(self.fallbackTimer)
      })
    })
    this.fallbackRefs = [errorRef, openRef]
    if (this.getSession(FALLBACK_KEY)) return fallback("memorized")
    this.fallbackTimer = setTimeout(fallback, ms)
    this.transportConnect()
  }
  Socket.prototype.cancelFallback = function () {
    clearTimeout(this.fallbackTimer)
    this.fallbackTimer = null
    this.off(this.fallbackRefs)
    this.fallbackRefs = []
  }
  // Drops the current connection (its channels error, to rejoin over the next one) and
  // makes `newTransport` the one the next connect uses.
  Socket.prototype.replaceTransport = function (newTransport) {
    clearTimeout(this.fallbackTimer)
    this.reconnectTimer.reset()
    this.transport = newTransport
    if (!this.conn) return
    var wasOpen = this.isConnected()
    this.clearHeartbeat()
    this.teardown()
    if (wasOpen) this.triggerChanError("connection_closed")
  }
  Socket.prototype.getSession = function (key) {
    try {
      return this.sessionStore ? this.sessionStore.getItem(key) : null
    } catch (_error) {
      return null
    }
  }
  Socket.prototype.storeSession = function (key, value) {
    try {
      if (this.sessionStore) this.sessionStore.setItem(key, value)
    } catch (_error) {
      // full or forbidden storage: the fallback is simply not remembered
    }
  }
  Socket.prototype.disconnect = function (callback, code, reason) {
    this.closeWasClean = true
    this.cancelFallback()
    this.clearHeartbeat()
    this.reconnectTimer.reset()
    this.teardown(callback, code, reason)
  }
  // Lets go of the connection at once (its events are ignored from now on); closes it
  // once what it still has to send is out (a leave just before a disconnect), and calls
  // `callback` once it is closed, each wait bounded (`waitFor`), as phoenix.js does.
  Socket.prototype.teardown = function (callback, code, reason) {
    callback = callback || noop
    var conn = this.conn
    if (!conn) return callback()
    this.conn = null
    this.pings = {}
    conn.onopen = noop
    conn.onerror = noop
    conn.onmessage = noop
    conn.onclose = noop
    waitFor(function () { return !conn.bufferedAmount || conn.readyState !== SOCKET_STATES.open }, function () {
      if (conn.readyState === SOCKET_STATES.connecting || conn.readyState === SOCKET_STATES.open) {
        if (code) conn.close(code, reason || "")
        else conn.close()
      }
      waitFor(function () { return conn.readyState === SOCKET_STATES.closed }, callback)
    })
  }
  Socket.prototype.onOpen = function (callback) { return this.addCallback("open", callback) }
  Socket.prototype.onClose = function (callback) { return this.addCallback("close", callback) }
  Socket.prototype.onError = function (callback) { return this.addCallback("error", callback) }
  Socket.prototype.onMessage = function (callback) { return this.addCallback("message", callback) }
  Socket.prototype.addCallback = function (kind, callback) {
    var ref = this.makeRef()
    this.stateChangeCallbacks[kind].push([ref, callback])
    return ref
  }
  Socket.prototype.off = function (refs) {
    var callbacks = this.stateChangeCallbacks
    Object.keys(callbacks).forEach(function (kind) {
      callbacks[kind] = callbacks[kind].filter(function (entry) { return refs.indexOf(entry[0]) === -1 })
    })
  }
  Socket.prototype.runCallbacks = function (kind, args) {
    this.stateChangeCallbacks[kind].slice().forEach(function (entry) { entry[1].apply(null, args) })
  }
  // Sends a heartbeat and calls `callback(rtt_ms)` when it is answered; false when not
  // connected. Pending pings are forgotten with their connection.
  Socket.prototype.ping = function (callback) {
    if (!this.isConnected()) return false
    var ref = this.makeRef()
    var start = Date.now()
    this.pings[ref] = function () { callback(Date.now() - start) }
    this.push({ topic: "phoenix", event: "heartbeat", payload: {}, ref: ref })
    return true
  }
  Socket.prototype.onConnOpen = function () {
    this.log("transport", (this.transport === LongPoll ? "LongPoll" : this.transport.name) + " connected to " + this.endPointURL())
    this.closeWasClean = false
    this.flushSendBuffer()
    this.reconnectTimer.reset()
    this.resetHeartbeat()
    this.runCallbacks("open", [])
  }
  Socket.prototype.onConnClose = function (event) {
    this.log("transport", "close", event)
    this.triggerChanError("connection_closed")
    this.clearHeartbeat()
    if (!this.closeWasClean) this.reconnectTimer.scheduleTimeout()
    this.runCallbacks("close", [event])
  }
  Socket.prototype.onConnError = function (error) {
    this.log("transport", "error", error)
    this.runCallbacks("error", [error])
    this.triggerChanError("connection_error")
  }
  Socket.prototype.triggerChanError = function (reason) {
    this.channels.slice().forEach(function (channel) {
      if (!(channel.isErrored() || channel.isLeaving() || channel.isClosed())) {
        channel.trigger(EVENTS.error, { source: "transport", reason: reason })
      }
    })
  }
  Socket.prototype.connectionState = function () {
    switch (this.conn && this.conn.readyState) {
      case SOCKET_STATES.connecting: return "connecting"
      case SOCKET_STATES.open: return "open"
      case SOCKET_STATES.closing: return "closing"
      default: return "closed"
    }
  }
  Socket.prototype.isConnected = function () {
    return this.connectionState() === "open"
  }
  Socket.prototype.remove = function (channel) {
    this.off(channel.stateChangeRefs)
    this.channels = this.channels.filter(function (c) { return c !== channel })
  }
  Socket.prototype.channel = function (topic, chanParams) {
    var chan = new Channel(topic, chanParams || {}, this)
    this.channels.push(chan)
    return chan
  }
  Socket.prototype.push = function (data) {
    var self = this
    var send = function () {
      self.encode(data, function (result) { self.conn.send(result) })
    }
    this.log("push", data.topic + " " + data.event + " (" + data.join_ref + ", " + data.ref + ")", data.payload)
    if (this.isConnected()) send()
    else this.sendBuffer.push({ joinRef: data.join_ref, topic: data.topic, send: send })
  }
  Socket.prototype.flushSendBuffer = function () {
    var self = this
    var buffer = this.sendBuffer
    this.sendBuffer = []
    buffer.forEach(function (entry) {
      // A push buffered for an earlier join of a channel is stale: drop it.
      var stale = self.channels.some(function (c) {
        return c.topic === entry.topic && entry.joinRef && c.joinRef() && c.joinRef() !== entry.joinRef
      })
      if (!stale && self.isConnected()) entry.send()
    })
  }
  Socket.prototype.makeRef = function () {
    var newRef = this.ref + 1
    this.ref = newRef === Number.MAX_SAFE_INTEGER ? 0 : newRef
    return this.ref.toString()
  }
  Socket.prototype.leaveOpenTopic = function (topic) {
    var dup = this.channels.find(function (c) { return c.topic === topic && (c.isJoined() || c.isJoining()) })
    if (dup) dup.leave()
  }

  // Heartbeats (WebSocket only: LongPoll sets skipHeartbeat): one in flight at a time, the
  // next one `heartbeatIntervalMs` after its reply; no reply within that time closes the
  // connection (1000 "heartbeat timeout") and reconnects.
  Socket.prototype.clearHeartbeat = function () {
    clearTimeout(this.heartbeatTimer)
    clearTimeout(this.heartbeatTimeoutTimer)
    this.heartbeatTimer = null
    this.heartbeatTimeoutTimer = null
    this.pendingHeartbeatRef = null
  }
  Socket.prototype.resetHeartbeat = function () {
    var self = this
    this.clearHeartbeat()
    if (this.conn && this.conn.skipHeartbeat) return
    this.heartbeatTimer = setTimeout(function () { self.sendHeartbeat() }, this.heartbeatIntervalMs)
  }
  Socket.prototype.sendHeartbeat = function () {
    var self = this
    if (!this.isConnected()) return
    this.pendingHeartbeatRef = this.makeRef()
    this.push({ topic: "phoenix", event: "heartbeat", payload: {}, ref: this.pendingHeartbeatRef })
    this.heartbeatTimeoutTimer = setTimeout(function () { self.heartbeatTimeout() }, this.heartbeatIntervalMs)
  }
  Socket.prototype.heartbeatTimeout = function () {
    var self = this
    if (!this.pendingHeartbeatRef) return
    this.log("transport", "heartbeat timeout. Attempting to re-establish connection")
    this.clearHeartbeat()
    this.triggerChanError("heartbeat_timeout")
    this.closeWasClean = false
    this.teardown(function () {
      self.runCallbacks("close", [{ code: WS_CLOSE_NORMAL, reason: "heartbeat timeout" }])
      self.reconnectTimer.scheduleTimeout()
    }, WS_CLOSE_NORMAL, "heartbeat timeout")
  }
  Socket.prototype.onConnMessage = function (rawMessage) {
    var self = this
    this.decode(rawMessage.data, function (msg) {
      if (msg.ref && msg.ref === self.pendingHeartbeatRef) {
        self.clearHeartbeat()
        self.heartbeatTimer = setTimeout(function () { self.sendHeartbeat() }, self.heartbeatIntervalMs)
      }
      self.log("receive", (msg.payload && msg.payload.status || "") + " " + msg.topic + " " + msg.event, msg.payload)
      var channels = self.channels.slice()
      for (var i = 0; i < channels.length; i++) {
        var channel = channels[i]
        if (!channel.isMember(msg.topic, msg.event, msg.payload, msg.join_ref)) continue
        channel.trigger(msg.event, msg.payload, msg.ref, msg.join_ref)
      }
      self.runCallbacks("message", [msg])
      var ping = msg.ref && self.pings[msg.ref]
      if (ping) {
        delete self.pings[msg.ref]
        ping()
      }
    })
  }

  // -- Presence -------------------------------------------------------------------------

  function Presence(channel, opts) {
    var self = this
    opts = opts || {}
    var events = opts.events || { state: "presence_state", diff: "presence_diff" }
    this.state = {}
    this.pendingDiffs = []
    this.channel = channel
    this.joinRef = null
    this.caller = { onJoin: noop, onLeave: noop, onSync: noop }
    channel.on(events.state, function (newState) {
      var caller = self.caller
      self.joinRef = self.channel.joinRef()
      self.state = Presence.syncState(self.state, newState, caller.onJoin, caller.onLeave)
      self.pendingDiffs.forEach(function (diff) {
        self.state = Presence.syncDiff(self.state, diff, caller.onJoin, caller.onLeave)
      })
      self.pendingDiffs = []
      caller.onSync()
    })
    channel.on(events.diff, function (diff) {
      var caller = self.caller
      if (self.inPendingSyncState()) {
        self.pendingDiffs.push(diff)
      } else {
        self.state = Presence.syncDiff(self.state, diff, caller.onJoin, caller.onLeave)
        caller.onSync()
      }
    })
  }
  Presence.prototype.onJoin = function (callback) { this.caller.onJoin = callback }
  Presence.prototype.onLeave = function (callback) { this.caller.onLeave = callback }
  Presence.prototype.onSync = function (callback) { this.caller.onSync = callback }
  Presence.prototype.list = function (by) { return Presence.list(this.state, by) }
  Presence.prototype.inPendingSyncState = function () {
    return !this.joinRef || this.joinRef !== this.channel.joinRef()
  }

  function refsOf(presence) {
    return presence.metas.map(function (m) { return m.phx_ref })
  }

  // Presence keys are whatever the server tracks (user names, often chosen by users), so
  // they are read and written as own properties only: a key such as "constructor",
  // "toString" or "__proto__" is a presence like any other, not a property that every
  // object inherits (where phoenix.js's plain `state[key]` would throw or lose it).
  function own(obj, key) {
    return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined
  }

  function setOwn(obj, key, value) {
    Object.defineProperty(obj, key, { value: value, writable: true, enumerable: true, configurable: true })
  }

  // The new state after a full `presence_state`: keys and metas missing from it leave,
  // new ones join (compared by phx_ref).
  Presence.syncState = function (currentState, newState, onJoin, onLeave) {
    var state = clone(currentState)
    var joins = {}
    var leaves = {}
    Object.keys(state).forEach(function (key) {
      if (own(newState, key) === undefined) setOwn(leaves, key, state[key])
    })
    Object.keys(newState).forEach(function (key) {
      var newPresence = newState[key]
      var current = own(state, key)
      if (current) {
        var newRefs = refsOf(newPresence)
        var curRefs = refsOf(current)
        var joined = newPresence.metas.filter(function (m) { return curRefs.indexOf(m.phx_ref) < 0 })
        var left = current.metas.filter(function (m) { return newRefs.indexOf(m.phx_ref) < 0 })
        if (joined.length > 0) {
          var joining = clone(newPresence)
          joining.metas = clone(joined)
          setOwn(joins, key, joining)
        }
        if (left.length > 0) {
          var leaving = clone(current)
          leaving.metas = clone(left)
          setOwn(leaves, key, leaving)
        }
      } else {
        setOwn(joins, key, newPresence)
      }
    })
    return Presence.syncDiff(state, { joins: joins, leaves: leaves }, onJoin, onLeave)
  }

  // Applies a `presence_diff` to `state` (in place, and returns it): joins first, then leaves.
  Presence.syncDiff = function (state, diff, onJoin, onLeave) {
    var d = clone(diff)
    var joins = d.joins || {}
    var leaves = d.leaves || {}
    onJoin = onJoin || noop
    onLeave = onLeave || noop
    Object.keys(joins).forEach(function (key) {
      var newPresence = joins[key]
      var current = own(state, key)
      var next = clone(newPresence)
      if (current) {
        var joinedRefs = refsOf(next)
        var kept = current.metas.filter(function (m) { return joinedRefs.indexOf(m.phx_ref) < 0 })
        next.metas = kept.concat(next.metas)
      }
      setOwn(state, key, next)
      onJoin(key, current, newPresence)
    })
    Object.keys(leaves).forEach(function (key) {
      var left = leaves[key]
      var current = own(state, key)
      if (!current) return
      var refsToRemove = refsOf(left)
      current.metas = current.metas.filter(function (m) { return refsToRemove.indexOf(m.phx_ref) < 0 })
      onLeave(key, current, left)
      if (current.metas.length === 0) delete state[key]
    })
    return state
  }

  Presence.list = function (presences, chooser) {
    chooser = chooser || function (key, presence) { return presence }
    return Object.getOwnPropertyNames(presences).map(function (key) { return chooser(key, presences[key]) })
  }

  return {
    Socket: Socket,
    Channel: Channel,
    Push: Push,
    Presence: Presence,
    LongPoll: LongPoll,
    Serializer: Serializer,
    vsn: VSN,
  }
})(globalThis)
export const Socket = alight.Socket
export const Channel = alight.Channel
export const Push = alight.Push
export const Presence = alight.Presence
export const LongPoll = alight.LongPoll
export const Serializer = alight.Serializer
export const vsn = alight.vsn
export default alight
