// Microphone capture, resampling to 16 kHz mono, WAV encoding and voice activity detection, all in
// the page: the service receives the same 16 kHz 16-bit mono WAV a speaker would send.

export const TARGET_RATE = 16000;

// ---- resampling --------------------------------------------------------------------------------------

// Streaming windowed-sinc resampler. Every output sample is a Blackman-windowed sinc interpolation of
// the input at its exact fractional position, with the sinc's cutoff just below the lower of the two
// Nyquist frequencies, so 44.1/48 kHz microphone audio is band-limited before it is thinned to 16 kHz
// (dropping samples would fold everything above 8 kHz back into the speech band).
export class StreamingResampler {
  constructor(fromRate, toRate = TARGET_RATE, { zeroCrossings = 16, phases = 256, rolloff = 0.94 } = {}) {
    this.fromRate = fromRate;
    this.toRate = toRate;
    this.passthrough = fromRate === toRate;
    this.step = fromRate / toRate; // input samples per output sample
    // Cutoff as a fraction of the input Nyquist frequency.
    this.cutoff = Math.min(1, toRate / fromRate) * rolloff;
    this.halfWidth = Math.ceil(zeroCrossings / this.cutoff); // in input samples
    this.phases = phases;
    this.table = new Float32Array(this.halfWidth * phases + 2);
    for (let i = 0; i < this.table.length; i++) {
      const d = i / phases;
      this.table[i] = d >= this.halfWidth ? 0 : this.cutoff * sinc(this.cutoff * d) * blackman(d / this.halfWidth);
    }
    // Input history; samples before the first one count as silence.
    this.buffer = new Float32Array(Math.max(4096, 4 * this.halfWidth));
    this.length = this.halfWidth;
    this.dropped = 0;  // input samples forgotten from the front of `buffer`
    this.received = 0; // input samples pushed so far
    this.produced = 0; // output samples made so far
  }

  // Where output sample `produced` lies in `buffer`; computed from the count, not accumulated, so
  // rounding does not drift over a long recording.
  get position() {
    return this.halfWidth + this.produced * this.step - this.dropped;
  }

  push(input) {
    if (this.passthrough) return Float32Array.from(input);
    this.received += input.length;
    this.append(input);
    return this.drain(Infinity);
  }

  // The remaining output once the input has ended (the last samples' right-hand context is silence):
  // in total exactly ceil(input length × toRate / fromRate) samples.
  flush() {
    if (this.passthrough) return new Float32Array(0);
    this.append(new Float32Array(this.halfWidth + 1));
    return this.drain(Math.ceil(this.received * this.toRate / this.fromRate));
  }

  append(input) {
    if (this.length + input.length > this.buffer.length) {
      const grown = new Float32Array(Math.max(this.buffer.length * 2, this.length + input.length));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(input, this.length);
    this.length += input.length;
  }

  drain(total) {
    const W = this.halfWidth;
    const out = [];
    for (let p = this.position; this.produced < total && Math.floor(p) + W < this.length; p = this.position) {
      out.push(this.sampleAt(p));
      this.produced++;
    }
    // Forget input no future output sample can reach.
    const drop = Math.floor(this.position) - W;
    if (drop > 0) {
      this.buffer.copyWithin(0, drop, this.length);
      this.length -= drop;
      this.dropped += drop;
    }
    return Float32Array.from(out);
  }

  sampleAt(position) {
    const W = this.halfWidth;
    const center = Math.floor(position);
    let acc = 0;
    for (let k = center - W + 1; k <= center + W; k++) {
      const scaled = Math.abs(position - k) * this.phases;
      const i = Math.floor(scaled);
      const frac = scaled - i;
      const weight = this.table[i] + (this.table[i + 1] - this.table[i]) * frac;
      acc += this.buffer[k] * weight;
    }
    return acc;
  }
}

function sinc(x) {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}

function blackman(u) {
  // u in [0, 1]: 0 at the centre of the window, 1 at its edge.
  return 0.42 + 0.5 * Math.cos(Math.PI * u) + 0.08 * Math.cos(2 * Math.PI * u);
}

export function resampleAll(samples, fromRate, toRate = TARGET_RATE) {
  const resampler = new StreamingResampler(fromRate, toRate);
  return concat([resampler.push(samples), resampler.flush()]);
}

export function concat(chunks) {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Float32Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

// ---- WAV ---------------------------------------------------------------------------------------------

// Float samples in [-1, 1] → a 16-bit PCM mono RIFF/WAVE file.
export function encodeWav(samples, rate = TARGET_RATE) {
  const dataBytes = samples.length * 2;
  const view = new DataView(new ArrayBuffer(44 + dataBytes));
  const ascii = (offset, text) => { for (let i = 0; i < text.length; i++) view.setUint8(offset + i, text.charCodeAt(i)); };
  ascii(0, "RIFF");
  view.setUint32(4, 36 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true);       // fmt chunk size
  view.setUint16(20, 1, true);        // PCM
  view.setUint16(22, 1, true);        // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true); // byte rate
  view.setUint16(32, 2, true);        // block align
  view.setUint16(34, 16, true);       // bits per sample
  ascii(36, "data");
  view.setUint32(40, dataBytes, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, Math.round(s < 0 ? s * 32768 : s * 32767), true);
  }
  return new Blob([view.buffer], { type: "audio/wav" });
}

export function levelDb(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return 10 * Math.log10(sum / Math.max(1, samples.length) + 1e-12);
}

// ---- voice activity detection ------------------------------------------------------------------------

// Energy detector on 20 ms frames against a tracked noise floor: the floor follows quiet frames down
// quickly and creeps up slowly, so a steady fan or hum raises it while speech does not. An utterance
// starts after a few loud frames (with some audio from before, so the first syllable is kept) and ends
// after a stretch of quiet.
export class VoiceActivityDetector {
  constructor({
    rate = TARGET_RATE, frameMs = 20, marginDb = 12, minLevelDb = -50, startFrames = 3,
    hangoverMs = 700, prerollMs = 300, minVoicedMs = 150, maxSeconds = 30,
  } = {}) {
    this.frame = Math.round(rate * frameMs / 1000);
    this.frameMs = frameMs;
    this.marginDb = marginDb;
    this.minLevelDb = minLevelDb;
    this.startFrames = startFrames;
    this.hangoverFrames = Math.ceil(hangoverMs / frameMs);
    this.prerollFrames = Math.ceil(prerollMs / frameMs);
    this.minVoicedFrames = Math.ceil(minVoicedMs / frameMs);
    this.maxFrames = Math.floor(maxSeconds * 1000 / frameMs);
    this.reset();
  }

  reset() {
    this.pending = new Float32Array(0);
    this.floorDb = -60;
    this.recent = [];      // frames before an utterance (pre-roll)
    this.loudRun = 0;
    this.utterance = null; // frames of the current utterance
    this.quietRun = 0;
    this.voiced = 0;
    this.waitForQuiet = false; // after an over-long utterance, nothing starts until a pause
  }

  get speaking() {
    return this.utterance !== null;
  }

  // Feeds 16 kHz samples; returns events: {type: "start", samples (pre-roll)}, {type: "audio", samples (each
  // frame of the utterance)}, {type: "end", samples (the whole utterance)}, {type: "discard"} (too little voice after a start),
  // {type: "too_long"}.
  push(samples) {
    const events = [];
    let data = this.pending.length ? concat([this.pending, samples]) : samples;
    let offset = 0;
    for (; offset + this.frame <= data.length; offset += this.frame) {
      const event = this.frameIn(data.slice(offset, offset + this.frame));
      if (event) events.push(event);
    }
    this.pending = data.slice(offset);
    return events;
  }

  frameIn(frame) {
    const level = levelDb(frame);
    const threshold = Math.max(this.floorDb + this.marginDb, this.minLevelDb);
    const loud = level > threshold;
    if (this.utterance === null) {
      this.floorDb = level < this.floorDb ? 0.7 * this.floorDb + 0.3 * level : this.floorDb + 0.05;
      this.floorDb = Math.max(this.floorDb, -90);
      if (this.waitForQuiet) {
        this.quietRun = loud ? 0 : this.quietRun + 1;
        if (this.quietRun < this.hangoverFrames) return null;
        this.waitForQuiet = false;
      }
      this.recent.push(frame);
      if (this.recent.length > this.prerollFrames + this.startFrames) this.recent.shift();
      this.loudRun = loud ? this.loudRun + 1 : 0;
      if (this.loudRun >= this.startFrames) {
        this.utterance = this.recent;
        this.recent = [];
        this.voiced = this.loudRun;
        this.quietRun = 0;
        // The pre-roll and the frames so far, so that a streaming caller can send the utterance from its start.
        return { type: "start", samples: concat(this.utterance) };
      }
      return null;
    }
    this.utterance.push(frame);
    if (loud) {
      this.voiced++;
      this.quietRun = 0;
    } else {
      this.quietRun++;
    }
    if (this.utterance.length >= this.maxFrames) {
      this.utterance = null;
      this.loudRun = 0;
      this.waitForQuiet = true;
      this.quietRun = 0;
      return { type: "too_long" };
    }
    if (this.quietRun < this.hangoverFrames) {
      // Each frame of an utterance as it comes, for a caller that streams it.
      return { type: "audio", samples: frame };
    }
    // Keep 200 ms of the trailing quiet: recognisers like a little silence after the last word.
    const keep = this.utterance.length - this.quietRun + Math.ceil(200 / this.frameMs);
    const frames = this.utterance.slice(0, keep);
    const voiced = this.voiced;
    this.utterance = null;
    this.loudRun = 0;
    // Too little voice to be speech (a click, a cough): a streaming caller drops what it sent.
    if (voiced < this.minVoicedFrames) return { type: "discard" };
    return { type: "end", samples: concat(frames) };
  }
}

// ---- microphone --------------------------------------------------------------------------------------

export class MicError extends Error {
  constructor(kind, cause) {
    super(kind);
    this.kind = kind; // denied | no_mic | busy | insecure | lost | failed
    this.cause = cause;
  }
}

function micErrorKind(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
    case "SecurityError":
      return "denied";
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return "no_mic";
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return "busy";
    default:
      return "failed";
  }
}

// Opens the microphone and hands out 16 kHz mono float blocks (and a level for the meter) until closed.
export class MicCapture {
  constructor({ onSamples, onLevel = () => {}, onLost = () => {}, workletUrl }) {
    this.onSamples = onSamples;
    this.onLevel = onLevel;
    this.onLost = onLost;
    this.workletUrl = workletUrl;
    this.stream = null;
    this.context = null;
    this.closed = false;
  }

  async open() {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new MicError("insecure");
    }
    try {
      // The browser's voice processing is off: automatic gain drives loud speech into clipping and noise
      // suppression smears consonants, both of which cost the recogniser more than they help. Echo
      // cancellation is not needed because the page never listens while a reply is playing.
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
        video: false,
      });
    } catch (error) {
      throw new MicError(micErrorKind(error), error);
    }
    const track = this.stream.getAudioTracks()[0];
    if (!track) {
      this.close();
      throw new MicError("no_mic");
    }
    track.addEventListener("ended", () => { if (!this.closed) this.onLost(); });
    try {
      this.context = new AudioContext();
      if (this.context.state === "suspended") await this.context.resume();
      this.resampler = new StreamingResampler(this.context.sampleRate, TARGET_RATE);
      const source = this.context.createMediaStreamSource(this.stream);
      if (this.context.audioWorklet) {
        await this.context.audioWorklet.addModule(this.workletUrl);
        this.node = new AudioWorkletNode(this.context, "capture-processor", { numberOfOutputs: 0 });
        this.node.port.onmessage = (event) => this.deliver(event.data);
        source.connect(this.node);
      } else {
        // Older browsers: a ScriptProcessor must be connected to the output to run; it writes silence.
        this.node = this.context.createScriptProcessor(4096, 1, 1);
        this.node.onaudioprocess = (event) => this.deliver(event.inputBuffer.getChannelData(0).slice());
        source.connect(this.node);
        this.node.connect(this.context.destination);
      }
    } catch (error) {
      this.close();
      throw new MicError("failed", error);
    }
    return this;
  }

  get sampleRate() {
    return this.context ? this.context.sampleRate : 0;
  }

  deliver(block) {
    if (this.closed) return;
    this.onLevel(levelDb(block));
    const out = this.resampler.push(block);
    if (out.length) this.onSamples(out);
  }

  // Stops the microphone; returns the resampler's last samples.
  close() {
    this.closed = true;
    const tail = this.resampler ? this.resampler.flush() : new Float32Array(0);
    if (this.node) {
      if (this.node.port) this.node.port.onmessage = null;
      this.node.disconnect();
    }
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    if (this.context) this.context.close().catch(() => {});
    this.stream = this.context = this.node = null;
    return tail;
  }
}
