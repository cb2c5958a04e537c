// A spoken turn streamed over the WebSocket /v1/voice/stream while the citizen speaks: 16 kHz 16-bit PCM goes
// out as it is captured, partial transcripts come back as Vosk makes them, and after {"eof": 1} the server sends
// the final result, the dialog reply (JSON) and the reply's speech as one WAV per sentence.

export function streamingAvailable() {
  return typeof window.WebSocket === "function";
}

// Float samples in [-1, 1] → little-endian 16-bit PCM, the Vosk protocol's audio.
export function toPcm16(samples) {
  const out = new DataView(new ArrayBuffer(samples.length * 2));
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out.setInt16(i * 2, Math.round(s < 0 ? s * 32768 : s * 32767), true);
  }
  return out.buffer;
}

export class VoiceStream {
  // handlers: onPartial(text), onResult(text), onFinal(utterance), onReply(body), onAudio(blob, index), onFailed(code)
  constructor({ query, token, handlers }) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = `${scheme}//${location.host}/v1/voice/stream?${query}`;
    // Browsers cannot set Authorization on a WebSocket: the token goes as a subprotocol the server reads but
    // never echoes ("minwon.v1" is the one it picks).
    this.protocols = token ? ["minwon.v1", `minwon.bearer.${token}`] : ["minwon.v1"];
    this.handlers = handlers;
    this.queue = [];
    this.state = "opening"; // opening | open | ending | replied | done | failed
    this.reply = null;
    this.audioCount = 0;
    this.socket = null;
  }

  open() {
    const socket = new WebSocket(this.url, this.protocols);
    socket.binaryType = "blob";
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (this.state !== "opening" && this.state !== "ending") return;
      socket.send(JSON.stringify({ config: { sample_rate: 16000 } }));
      for (const buffer of this.queue) socket.send(buffer);
      this.queue = [];
      if (this.state === "ending") socket.send(JSON.stringify({ eof: 1 }));
      else this.state = "open";
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => {
      const replied = this.reply !== null;
      const code = event.code;
      if (replied && code === 1000) {
        this.state = "done";
        this.handlers.onDone?.(this.audioCount);
      } else if (this.state !== "failed") {
        this.state = "failed";
        this.handlers.onFailed?.(this.error || `closed_${code}`, replied);
      }
    });
    return this;
  }

  receive(data) {
    if (typeof data !== "string") {
      this.audioCount += 1;
      this.handlers.onAudio?.(new Blob([data], { type: "audio/wav" }), this.audioCount - 1);
      return;
    }
    let body;
    try {
      body = JSON.parse(data);
    } catch {
      return;
    }
    if ("error" in body) {
      this.error = body.error.code;
    } else if ("response" in body) {
      this.reply = body;
      this.state = "replied";
      this.handlers.onReply?.(body);
    } else if ("utterance" in body) {
      this.handlers.onFinal?.(body.utterance);
    } else if ("partial" in body) {
      this.handlers.onPartial?.(body.partial);
    } else if (body.text) {
      this.handlers.onResult?.(body.text);
    }
  }

  get usable() {
    return this.state === "opening" || this.state === "open";
  }

  send(samples) {
    if (!this.usable) return;
    const buffer = toPcm16(samples);
    if (this.state === "open") this.socket.send(buffer);
    else this.queue.push(buffer);
  }

  // The citizen stopped speaking.
  end() {
    if (this.state === "open") {
      this.socket.send(JSON.stringify({ eof: 1 }));
      this.state = "ending";
    } else if (this.state === "opening") {
      this.state = "ending";
    }
  }

  abort() {
    this.state = "failed";
    if (this.socket && this.socket.readyState <= 1) this.socket.close(1000);
  }
}

// Plays a reply's sentences one after another in one <audio> element, each as soon as it has arrived and the
// previous one has ended. `finished` resolves with ended | interrupted | blocked | error.
export class SentencePlayer {
  constructor(audio) {
    this.audio = audio;
    this.blobs = [];
    this.expected = null; // how many sentences the reply has (known from the reply JSON)
    this.index = 0;
    this.playing = false;
    this.stopped = false;
    this.urls = [];
    this.finished = new Promise((resolve) => { this.resolve = resolve; });
    audio.addEventListener("ended", () => { this.playing = false; this.index += 1; this.next(); });
    audio.addEventListener("error", () => this.finish("error"));
  }

  expect(count) {
    this.expected = count;
    this.next();
  }

  add(blob) {
    this.blobs.push(blob);
    this.next();
  }

  next() {
    if (this.stopped || this.playing) return;
    if (this.expected !== null && this.index >= this.expected) {
      this.finish("ended");
      return;
    }
    const blob = this.blobs[this.index];
    if (!blob) return; // not here yet
    const url = URL.createObjectURL(blob);
    this.urls.push(url);
    this.audio.src = url;
    this.playing = true;
    this.audio.play().then(() => this.onPlaying?.()).catch(() => this.finish("blocked"));
  }

  stop(outcome = "interrupted") {
    if (this.stopped) return;
    this.audio.pause();
    this.finish(outcome);
  }

  finish(outcome) {
    if (this.stopped) return;
    this.stopped = true;
    this.resolve(outcome);
  }
}
