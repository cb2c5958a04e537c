// The console page: push-to-talk and hands-free speech streamed to /v1/voice/stream while the citizen speaks
// (partial transcripts live, the reply's first sentence playing as soon as it arrives), or uploaded to /v1/voice
// when WebSockets are unavailable or streaming is switched off; typed turns to /v1/console/converse
// (the /v1/converse contract, recorded as the console channel),
// the conversation with what was heard and done, and the demo citizen's data, refreshed after each turn.

import { MicCapture, MicError, VoiceActivityDetector, concat, encodeWav } from "./audio.js";
import { formatDate, formatDateTime, lang, particleIGa, particleRo, t } from "./i18n.js";
import { SentencePlayer, VoiceStream, streamingAvailable } from "./stream.js";

const config = JSON.parse(document.getElementById("console-config").textContent);
const WORKLET_URL = new URL("./capture-worklet.js", import.meta.url).href;
const MIN_RECORDING_S = 0.25;

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
};

const state = {
  userId: null,
  locale: "ko-KR",
  sessionId: null,
  expects: null,
  busy: false,
  recording: null,    // {mode: pointer | key | toggle, mic, chunks, released, tooLong}
  handsFree: null,    // {mic, vad, paused}
  overview: null,
  playing: null,
  noTts: false,       // the server answered /v1/tts with 404
  turnSeq: 0,         // the newest turn; only its reply plays by itself
  ttsAbort: null,     // cancels the synthesis of a typed reply a newer turn has overtaken
};

// ---- interface language ------------------------------------------------------------------------------

function tr(key, params) {
  return t(key, state.locale, params);
}

function applyLocale(locale) {
  state.locale = locale;
  document.documentElement.lang = lang(locale);
  document.title = tr("title") + " · Minwon Voice";
  $("language").value = locale;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = tr(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-params]")) {
    node.textContent = tr(node.dataset.i18nKey, JSON.parse(node.dataset.i18nParams));
  }
  renderSpeakerOptions();
  renderPtt();
  renderTextInput();
  renderServiceStatus();
  renderOverview();
}

// A text node that follows the interface language.
function label(key, params = {}) {
  return el("span", { "data-i18n-key": key, "data-i18n-params": JSON.stringify(params), text: tr(key, params) });
}

// ---- speaker identities ------------------------------------------------------------------------------

// The guest speaks without a device token: the service treats it as anonymous (public answers only).
const GUEST = "guest";
// Outside demo mode the page asks once for this device's token and keeps it in memory only.
let enteredToken = null;

function speakers() {
  const own = enteredToken ? [{ user_id: "this-device", name: null, locale: null, device_token: enteredToken }] : [];
  return [...config.speakers, ...own, { user_id: GUEST, name: null, locale: null }];
}

function speakerLabel(s) {
  if (s.user_id === GUEST) return tr("speaker_guest");
  if (s.user_id === "this-device") return tr("speaker_this_device");
  return s.name ? `${s.name} — ${s.user_id}` : `${tr("speaker_unlinked")} — ${s.user_id}`;
}

function renderSpeakerOptions() {
  const select = $("speaker");
  select.replaceChildren(...speakers().map((s) => el("option", { value: s.user_id, text: speakerLabel(s) })));
  select.value = state.userId;
}

// The Authorization header of the selected speaker's device token (none for the guest).
function authHeaders() {
  const token = deviceToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function deviceToken() {
  const speaker = speakers().find((s) => s.user_id === state.userId);
  return speaker && speaker.device_token ? speaker.device_token : null;
}

function selectSpeaker(userId) {
  const speaker = speakers().find((s) => s.user_id === userId) || speakers()[0];
  state.userId = speaker.user_id;
  state.overview = null;
  startNewSession(false);
  applyLocale(speaker.locale || state.locale);
  refreshOverview(false);
}

function startNewSession(announce = true) {
  state.sessionId = null;
  state.expects = null;
  renderTextInput();
  if (announce) {
    appendToLog(el("li", { class: "divider" }, label("session_new")));
  }
}

// ---- errors and status -------------------------------------------------------------------------------

function showError(key, params = {}) {
  const box = $("error");
  box.replaceChildren(label(key, params));
  box.dataset.code = key;
  box.hidden = false;
}

function clearError() {
  const box = $("error");
  box.hidden = true;
  box.dataset.code = "";
  box.replaceChildren();
}

class ServiceError extends Error {
  constructor(key, params = {}, status = 0) {
    super(key);
    this.key = key;
    this.params = params;
    this.status = status;
  }
}

// Maps a failed HTTP exchange to a message key the page can say in words.
async function serviceError(response, path) {
  let code = "", message = "";
  try {
    const body = await response.json();
    code = body.error?.code || "";
    message = body.error?.message || "";
  } catch { /* not JSON: answered by something other than the service */ }
  const status = response.status;
  if (code === "audio_too_long") return new ServiceError("err_too_long", { s: config.max_recording_s }, status);
  if (code === "silent_audio" || code === "empty_audio") return new ServiceError("err_silent", {}, status);
  if (status === 404 && path.startsWith("/v1/voice")) return new ServiceError("err_no_voice", {}, status);
  if (status === 429) return new ServiceError("err_rate_limited", { s: response.headers.get("Retry-After") || "60" }, status);
  if (status === 502 || status === 503 || status === 504) return new ServiceError("err_unavailable", {}, status);
  if (path.startsWith("/v1/voice") && status >= 400 && status < 500) {
    return new ServiceError("err_bad_audio", { detail: message || code || status }, status);
  }
  return new ServiceError("err_server", { detail: message || `HTTP ${status}` }, status);
}

async function request(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ServiceError("err_unreachable");
  }
  if (!response.ok) throw await serviceError(response, path);
  return response;
}

let serviceState = "checking";

function renderServiceStatus() {
  const node = $("service-status");
  node.dataset.state = serviceState;
  node.textContent = tr({ checking: "svc_checking", ok: "svc_ready", starting: "svc_starting", unreachable: "svc_unreachable" }[serviceState]);
}

async function checkHealth() {
  try {
    const response = await fetch("/health", { cache: "no-store" });
    serviceState = response.ok ? "ok" : "starting";
  } catch {
    serviceState = "unreachable";
  }
  renderServiceStatus();
  if (serviceState !== "ok") setTimeout(checkHealth, 3000);
}

// ---- conversation view -------------------------------------------------------------------------------

function newRequestId() {
  return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
}

// Adds a turn to the log; the reply is filled in later. A PIN the citizen gives is never shown.
function addTurn(mode, text) {
  const hidden = state.expects === "pin";
  state.turnSeq += 1;
  if (state.ttsAbort) state.ttsAbort.abort();
  const turn = el("li", { class: "turn", "data-mode": mode, "data-state": "waiting", "data-seq": String(state.turnSeq) });
  const said = el("p", { class: "said" });
  if (mode === "text") said.append(hidden ? label("pin_hidden") : el("q", { text }));
  const you = el("div", { class: "bubble you" },
    el("span", { class: "who" }, label("you"), " · ", label(mode === "voice" ? "via_voice" : "via_text")),
    said,
    el("dl", { class: "facts you-facts" }));
  const reply = el("div", { class: "bubble assistant" },
    el("span", { class: "who" }, label("assistant")),
    el("p", { class: "reply", "data-role": "reply" }, label("waiting")),
    el("dl", { class: "facts" }));
  turn.append(you, reply);
  turn.dataset.pinHidden = String(hidden);
  appendToLog(turn);
  return turn;
}

// Keeps the newest entry in view inside the log's own scroll box (the page itself does not jump).
function appendToLog(node) {
  const log = $("log");
  log.append(node);
  log.scrollTop = log.scrollHeight;
}

function addFact(list, key, value, attrs = {}) {
  list.append(el("dt", {}, label(key)), el("dd", attrs, value));
}

function timingsText(timings) {
  const parts = [];
  for (const [key, name] of [["asr", "t_asr"], ["dialog", "t_dialog"], ["tts", "t_tts"], ["round_trip", "t_round_trip"],
    ["first_audio", "t_first_audio"]]) {
    if (typeof timings[key] === "number") {
      const part = el("span", { class: "timing", "data-timing": key });
      part.append(label(name), " ", String(Math.round(timings[key])), " ms");
      parts.push(part);
    }
  }
  const out = el("span", { class: "timings" });
  parts.forEach((part, i) => { if (i) out.append(" · "); out.append(part); });
  return out;
}

// `heard` is what the recogniser made of the audio before its confidence floor and phrase matching;
// when nothing was understood, it is still worth seeing.
function fillTranscript(turn, transcript, confidence, mode, heard) {
  const said = turn.querySelector(".said");
  if (turn.dataset.pinHidden === "true") said.replaceChildren(label("pin_hidden"));
  else if (transcript) said.replaceChildren(el("q", { "data-role": "transcript", text: transcript }));
  else if (heard) said.replaceChildren(el("q", { "data-role": "heard", text: heard }), " ", label("not_understood"));
  else said.replaceChildren(label("transcript_empty"));
  const facts = turn.querySelector(".you-facts");
  if (typeof confidence === "number") {
    addFact(facts, "confidence", `${Math.round(confidence * 100)}%`, { "data-role": "confidence" });
  }
  if (mode === "open" || mode === "limited") {
    addFact(facts, "asr_mode", label("asr_mode_" + mode), { "data-role": "asr-mode" });
  }
}

function fillReply(turn, reply, timings) {
  turn.dataset.state = "answered";
  requestAnimationFrame(() => { const log = $("log"); log.scrollTop = log.scrollHeight; });
  turn.dataset.intent = reply.intent || "";
  const text = turn.querySelector("[data-role=reply]");
  text.replaceChildren(reply.speech || "");
  text.lang = lang(reply.locale || state.locale);
  const facts = turn.querySelector(".assistant .facts");
  addFact(facts, "intent", el("code", { text: reply.intent || "" }), { "data-role": "intent" });
  if (reply.expects) addFact(facts, "expects", label("expects_" + reply.expects), { "data-role": "expects" });
  addFact(facts, "timings", timingsText(timings), { "data-role": "timings" });
}

function failTurn(turn, error) {
  turn.dataset.state = "failed";
  turn.querySelector("[data-role=reply]").replaceChildren(label(error.key, error.params));
}

// Takes in what a reply changes for the next turn: the session, what it expects, the language.
function followReply(reply) {
  state.expects = reply.expects || null;
  if (reply.end_session) {
    state.sessionId = null;
    state.expects = null;
    appendToLog(el("li", { class: "divider" }, label("session_ended")));
    if (state.handsFree) stopHandsFree();
  } else {
    state.sessionId = reply.session_id || state.sessionId;
  }
  if (reply.locale && reply.locale !== state.locale) applyLocale(reply.locale);
  renderTextInput();
}

// ---- playback and captions ---------------------------------------------------------------------------

function setCaption(text, speaking, locale) {
  const caption = $("caption");
  caption.textContent = text;
  caption.lang = lang(locale || state.locale);
  caption.dataset.speaking = String(speaking);
}

// Plays a reply's audio (a WAV blob) in the turn, with its caption; resolves when playback is over. A reply
// that a newer turn has overtaken keeps its controls but does not play by itself.
function playReply(turn, blob, speech) {
  const url = URL.createObjectURL(blob);
  const audio = el("audio", { controls: true, preload: "auto", src: url, "aria-label": tr("reply_audio") });
  audio.dataset.role = "reply-audio";
  turn.querySelector(".assistant").append(audio);
  if (Number(turn.dataset.seq) !== state.turnSeq) {
    turn.dataset.playback = "overtaken";
    return Promise.resolve("overtaken");
  }
  stopPlayback();
  setCaption(speech, true);
  return new Promise((resolve) => {
    let finished = false;
    const finish = (outcome) => {
      if (finished) return;
      finished = true;
      turn.dataset.playback = outcome;
      setCaption(speech, false);
      if (state.playing && state.playing.audio === audio) state.playing = null;
      resolve(outcome);
    };
    audio.addEventListener("ended", () => finish("ended"), { once: true });
    audio.addEventListener("error", () => finish("error"), { once: true });
    state.playing = { audio, finish };
    audio.play().then(() => { if (!finished) turn.dataset.playback = "playing"; }).catch(() => {
      // Autoplay refused (no user gesture yet): leave the controls so the citizen can press play.
      turn.querySelector(".assistant").append(el("p", { class: "hint" }, label("play_blocked")));
      finish("blocked");
    });
  });
}

function base64ToBlob(b64, type) {
  const raw = atob(b64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return new Blob([bytes], { type });
}

// ---- turns -------------------------------------------------------------------------------------------

// A typed turn. Resolves once the reply is shown, to {playback}: a promise of the end of its speech (an
// object, so that awaiting the turn does not also wait for the speech).
async function sendText(text) {
  clearError();
  const turn = addTurn("text", text);
  const body = { text, locale: state.locale, request_id: newRequestId() };
  if (state.sessionId) body.session_id = state.sessionId;
  const started = performance.now();
  let reply;
  try {
    const response = await request("/v1/console/converse", {
      method: "POST", headers: { "Content-Type": "application/json", ...authHeaders() }, body: JSON.stringify(body),
    });
    reply = await response.json();
  } catch (error) {
    failTurn(turn, error);
    showError(error.key, error.params);
    return { playback: Promise.resolve("failed") };
  }
  const timings = { round_trip: performance.now() - started };
  followReply(reply);
  fillReply(turn, reply, timings);
  setCaption(reply.speech || "", false);
  refreshOverview(true);
  if (!$("speak-typed").checked || !reply.speech || state.noTts) return { playback: Promise.resolve("silent") };
  return { playback: speakTypedReply(turn, reply, timings) };
}

async function speakTypedReply(turn, reply, timings) {
  const abort = new AbortController();
  state.ttsAbort = abort;
  const ttsStarted = performance.now();
  let audio;
  try {
    const response = await request("/v1/tts", {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "audio/wav" },
      body: JSON.stringify({ text: reply.speech, locale: reply.locale || state.locale }), signal: abort.signal,
    });
    audio = await response.blob();
  } catch (error) {
    if (abort.signal.aborted) {
      turn.dataset.playback = "overtaken";
    } else if (error.status === 404) {
      // Said once; typed replies are then captioned only.
      state.noTts = true;
      turn.querySelector(".assistant").append(el("p", { class: "hint" }, label("no_tts")));
    } else {
      showError(error.key, error.params);
    }
    return "silent";
  } finally {
    if (state.ttsAbort === abort) state.ttsAbort = null;
  }
  timings.tts = performance.now() - ttsStarted;
  turn.querySelector("[data-role=timings]").replaceChildren(timingsText(timings));
  return playReply(turn, audio, reply.speech);
}

// A spoken turn (16 kHz samples). Resolves once the reply is shown, to {playback} as sendText does.
async function sendAudio(samples) {
  const seconds = samples.length / 16000;
  if (seconds > config.max_recording_s) {
    showError("err_too_long", { s: config.max_recording_s });
    return { playback: Promise.resolve("refused") };
  }
  clearError();
  const turn = addTurn("voice", "");
  const query = new URLSearchParams({ locale: state.locale, request_id: newRequestId() });
  if (state.sessionId) query.set("session_id", state.sessionId);
  const started = performance.now();
  let result;
  try {
    const response = await request("/v1/voice?" + query, {
      method: "POST", headers: { "Content-Type": "audio/wav", Accept: "application/json", ...authHeaders() },
      body: encodeWav(samples),
    });
    result = await response.json();
  } catch (error) {
    failTurn(turn, error);
    showError(error.key, error.params);
    return { playback: Promise.resolve("failed") };
  }
  const reply = { locale: result.locale, ...(result.response || {}) };
  fillTranscript(turn, result.transcript || "", result.confidence, result.asr_mode, result.heard || "");
  followReply(reply);
  fillReply(turn, reply, { ...(result.timings_ms || {}), round_trip: performance.now() - started });
  refreshOverview(true);
  if (!result.audio_b64) {
    setCaption(reply.speech || "", false);
    return { playback: Promise.resolve("silent") };
  }
  return { playback: playReply(turn, base64ToBlob(result.audio_b64, "audio/wav"), reply.speech || "") };
}

// ---- streamed turns ----------------------------------------------------------------------------------

// Every spoken turn streams when the browser has WebSockets; otherwise (or when a stream is refused) the
// recording is uploaded once it ends, as before.
function streamingOn() {
  return streamingAvailable();
}

// Opens a streamed spoken turn: the turn appears in the log at once and shows the partial transcript while the
// citizen is still speaking. `result` resolves, once the reply is shown, to {playback} as sendAudio does, or to
// null when the stream failed before the reply (the caller then uploads the recording instead).
function startStreamTurn({ handsFree = false, onReply = () => {} } = {}) {
  clearError();
  const turn = addTurn("voice", "");
  turn.dataset.transport = "stream";
  const query = new URLSearchParams({ dialog: "1", locale: state.locale, request_id: newRequestId() });
  if (state.sessionId) query.set("session_id", state.sessionId);
  if (handsFree) query.set("hands_free", "1");
  const heard = [];
  const marks = {};
  let player = null;
  let resolveResult;
  const result = new Promise((resolve) => { resolveResult = resolve; });
  const showHeard = (partial) => {
    if (turn.dataset.pinHidden === "true") return;
    const text = [...heard, partial].filter(Boolean).join(" ");
    if (text) turn.querySelector(".said").replaceChildren(el("q", { "data-role": "partial", text }));
  };
  const stream = new VoiceStream({
    query: query.toString(),
    token: deviceToken(),
    handlers: {
      onPartial: (text) => showHeard(text),
      onResult: (text) => { heard.push(text); showHeard(""); },
      onFinal: () => { marks.final = performance.now(); },
      onReply: (body) => {
        marks.reply = performance.now();
        onReply();
        const reply = { locale: body.locale, ...(body.response || {}) };
        fillTranscript(turn, body.transcript || "", body.confidence, body.asr_mode, body.heard || "");
        followReply(reply);
        const ended = marks.ended ?? marks.reply;
        const timings = { asr: (marks.final ?? marks.reply) - ended, dialog: body.timings_ms?.dialog,
          round_trip: marks.reply - ended };
        fillReply(turn, reply, timings);
        turn.dataset.sentences = String(body.sentences || 0);
        refreshOverview(true);
        if (!body.sentences) {
          setCaption(reply.speech || "", false);
          resolveResult({ playback: Promise.resolve("silent") });
          return;
        }
        player = playSentences(turn, reply.speech || "", body.sentences);
        player.timings = timings;
        resolveResult({ playback: player.finished });
      },
      onAudio: (blob) => {
        if (!player) return;
        if (marks.firstAudio === undefined) {
          marks.firstAudio = performance.now();
          player.timings.first_audio = marks.firstAudio - (marks.ended ?? marks.reply);
          turn.querySelector("[data-role=timings]").replaceChildren(timingsText(player.timings));
        }
        player.add(blob);
      },
      onFailed: (code, replied) => {
        if (replied) {
          if (player) player.expect(player.blobs.length);
          return;
        }
        turn.remove();
        resolveResult(null);
      },
    },
  }).open();
  return {
    turn, stream, result,
    send: (samples) => stream.send(samples),
    end: () => { marks.ended = performance.now(); stream.end(); },
    abort: () => { stream.abort(); turn.remove(); resolveResult(null); },
  };
}

// The reply's sentences in one audio element, each played as soon as it has arrived (see SentencePlayer).
function playSentences(turn, speech, count) {
  const audio = el("audio", { controls: true, preload: "auto", "aria-label": tr("reply_audio") });
  audio.dataset.role = "reply-audio";
  turn.querySelector(".assistant").append(audio);
  const player = new SentencePlayer(audio);
  player.expect(count);
  if (Number(turn.dataset.seq) !== state.turnSeq) {
    turn.dataset.playback = "overtaken";
    player.stop("overtaken");
    return player;
  }
  stopPlayback();
  setCaption(speech, true);
  player.onPlaying = () => { if (!player.stopped) turn.dataset.playback = "playing"; };
  state.playing = { audio, finish: (outcome) => player.stop(outcome) };
  player.finished.then((outcome) => {
    turn.dataset.playback = outcome;
    setCaption(speech, false);
    if (state.playing && state.playing.audio === audio) state.playing = null;
    if (outcome === "blocked") turn.querySelector(".assistant").append(el("p", { class: "hint" }, label("play_blocked")));
  });
  return player;
}

// ---- push-to-talk ------------------------------------------------------------------------------------

function renderPtt() {
  const button = $("ptt");
  const recording = state.recording;
  let key = "ptt_idle";
  if (state.handsFree) key = "ptt_disabled_hands_free";
  else if (recording && !recording.mic) key = "ptt_opening";
  else if (recording) key = recording.mode === "toggle" ? "ptt_toggle_recording" : "ptt_recording";
  else if (state.busy) key = "ptt_sending";
  button.dataset.state = state.handsFree ? "disabled" : recording ? (recording.mic ? "recording" : "opening") : state.busy ? "busy" : "idle";
  button.setAttribute("aria-pressed", String(Boolean(recording)));
  button.disabled = Boolean(state.handsFree);
  $("ptt-label").textContent = tr(key);
}

function micErrorKey(error) {
  const kind = error instanceof MicError ? error.kind : "failed";
  return { denied: "err_mic_denied", no_mic: "err_no_mic", busy: "err_mic_busy", insecure: "err_mic_insecure", lost: "err_mic_lost" }[kind] || "err_mic_failed";
}

async function startRecording(mode) {
  if (state.recording || state.busy || state.handsFree) return;
  clearError();
  stopPlayback();
  const recording = { mode, mic: null, chunks: [], released: false, tooLong: false, stream: null };
  state.recording = recording;
  renderPtt();
  const mic = new MicCapture({
    workletUrl: WORKLET_URL,
    onSamples: (samples) => {
      recording.chunks.push(samples);
      if (recording.stream) recording.stream.send(samples);
      const seconds = recording.chunks.reduce((n, c) => n + c.length, 0) / 16000;
      if (seconds > config.max_recording_s) {
        recording.tooLong = true;
        stopRecording(mode);
      }
    },
    onLevel: showLevel,
    onLost: () => { showError("err_mic_lost"); cancelRecording(); },
  });
  try {
    await mic.open();
  } catch (error) {
    state.recording = null;
    renderPtt();
    showError(micErrorKey(error));
    return;
  }
  recording.mic = mic;
  if (streamingOn() && state.recording === recording) {
    // Opened only once the microphone is: a page without a microphone opens no stream.
    recording.stream = startStreamTurn();
    for (const chunk of recording.chunks) recording.stream.send(chunk);
  }
  renderPtt();
  $("mic-status").textContent = "";
  if (recording.released) stopRecording(recording.mode);
}

function cancelRecording() {
  const recording = state.recording;
  if (!recording) return;
  state.recording = null;
  if (recording.mic) recording.mic.close();
  if (recording.stream) recording.stream.abort();
  showLevel(-100);
  renderPtt();
}

async function stopRecording(mode) {
  const recording = state.recording;
  if (!recording || (mode !== recording.mode && mode !== "any")) return;
  if (!recording.mic) {
    recording.released = true; // the microphone is still opening; stop as soon as it is open
    return;
  }
  state.recording = null;
  const tail = recording.mic.close();
  showLevel(-100);
  const samples = concat([...recording.chunks, tail]);
  if (recording.tooLong || samples.length / 16000 < MIN_RECORDING_S) {
    if (recording.stream) recording.stream.abort();
    renderPtt();
    if (recording.tooLong) showError("err_too_long", { s: config.max_recording_s });
    else showError("err_too_short");
    return;
  }
  state.busy = true;
  renderPtt();
  try {
    if (recording.stream) {
      recording.stream.send(tail);
      recording.stream.end();
      // A stream that failed before the reply (refused, cut off) leaves the recording to the upload path.
      if (await recording.stream.result) return;
    }
    await sendAudio(samples);
  } finally {
    state.busy = false;
    renderPtt();
  }
}

// Speaking (or typing) over a reply cuts it short, as on a speaker.
function stopPlayback() {
  if (state.playing) {
    state.playing.audio.pause();
    state.playing.finish("interrupted");
  }
}

function showLevel(db) {
  const fraction = Math.max(0, Math.min(1, (db + 60) / 60));
  $("level-bar").style.transform = `scaleX(${fraction.toFixed(3)})`;
}

// Space held anywhere except where it types or presses something else.
function spaceStartsRecording(target) {
  if (target === $("ptt")) return true;
  return !target.closest("input, textarea, select, button, a, summary, audio, [contenteditable]");
}

function bindPushToTalk() {
  const button = $("ptt");
  button.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    button.setPointerCapture(event.pointerId);
    button.focus();
    startRecording("pointer");
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
    button.addEventListener(type, () => stopRecording("pointer"));
  }
  // Keyboard clicks are handled by the key handlers below; pointer clicks by the pointer handlers.
  button.addEventListener("click", (event) => event.preventDefault());
  button.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      if (event.repeat) return;
      if (state.recording && state.recording.mode === "toggle") stopRecording("toggle");
      else startRecording("toggle");
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.code !== "Space" || !spaceStartsRecording(event.target)) return;
    event.preventDefault();
    if (!event.repeat) startRecording("key");
  });
  document.addEventListener("keyup", (event) => {
    if (event.code !== "Space" || !state.recording || state.recording.mode !== "key") return;
    event.preventDefault();
    stopRecording("key");
  });
  // A recording must not outlive the page being hidden (the key-up would never come).
  document.addEventListener("visibilitychange", () => { if (document.hidden) stopRecording("any"); });
}

// ---- hands-free --------------------------------------------------------------------------------------

async function startHandsFree() {
  if (state.handsFree) return;
  clearError();
  const vad = new VoiceActivityDetector({ maxSeconds: config.max_recording_s });
  const session = { mic: null, vad, paused: false, stream: null };
  state.handsFree = session;
  renderPtt();
  const mic = new MicCapture({
    workletUrl: WORKLET_URL,
    onSamples: (samples) => {
      if (session.paused) return;
      for (const event of vad.push(samples)) {
        if (event.type === "start") {
          $("mic-status").textContent = tr("hf_hearing");
          if (streamingOn()) {
            // The server's endpointing may end the turn before the detector here does: the reply pauses listening.
            session.stream = startStreamTurn({ handsFree: true, onReply: () => {
              const stream = session.stream;
              session.stream = null;
              if (stream) handsFreeUtterance(session, null, stream);
            } });
            session.stream.send(event.samples);
          }
        } else if (event.type === "audio") {
          if (session.stream) session.stream.send(event.samples);
        } else if (event.type === "too_long" || event.type === "discard") {
          if (session.stream) session.stream.abort();
          session.stream = null;
          if (event.type === "discard") continue;
          showError("err_too_long", { s: config.max_recording_s });
          $("mic-status").textContent = tr("hf_listening");
        } else if (event.type === "end") {
          const stream = session.stream;
          session.stream = null;
          handsFreeUtterance(session, event.samples, stream);
        }
      }
    },
    onLevel: (db) => { if (!session.paused) showLevel(db); },
    onLost: () => { showError("err_mic_lost"); stopHandsFree(); },
  });
  try {
    await mic.open();
  } catch (error) {
    state.handsFree = null;
    $("hands-free").checked = false;
    renderPtt();
    showError(micErrorKey(error));
    return;
  }
  if (state.handsFree !== session) {
    mic.close(); // switched off while the microphone was opening
    return;
  }
  session.mic = mic;
  $("hands-free").checked = true;
  $("mic-status").textContent = tr("hf_listening");
  $("mic-status").dataset.state = "listening";
}

function pauseHandsFree(session) {
  if (session.paused) return;
  session.paused = true;
  session.vad.reset();
  showLevel(-100);
  $("mic-status").textContent = tr("hf_paused");
  $("mic-status").dataset.state = "paused";
}

// While a reply is being fetched and spoken the detector is paused, so the reply is not heard as speech.
// A streamed utterance ends either here (the detector heard the pause: eof) or at the server (its endpointing
// answered first); whichever comes first finishes the turn.
async function handsFreeUtterance(session, samples, stream = null) {
  if (stream) {
    if (stream.finishing) return;
    stream.finishing = true;
  }
  pauseHandsFree(session);
  state.busy = true;
  try {
    let outcome = null;
    if (stream) {
      stream.end();
      outcome = await stream.result;
      if (!outcome && !samples) return;
    }
    const { playback } = outcome || await sendAudio(samples);
    state.busy = false;
    await playback;
  } finally {
    state.busy = false;
    if (state.handsFree === session) {
      session.paused = false;
      $("mic-status").textContent = tr("hf_listening");
      $("mic-status").dataset.state = "listening";
    }
  }
}

function stopHandsFree() {
  const session = state.handsFree;
  state.handsFree = null;
  $("hands-free").checked = false;
  if (session && session.mic) session.mic.close();
  $("mic-status").textContent = "";
  $("mic-status").dataset.state = "off";
  showLevel(-100);
  renderPtt();
}

// ---- text input --------------------------------------------------------------------------------------

function renderTextInput() {
  const input = $("text-input");
  const pin = state.expects === "pin";
  // A PIN typed here is hidden like a password and never echoed into the log.
  input.type = pin ? "password" : "text";
  input.inputMode = pin ? "numeric" : "text";
  $("text-label").textContent = tr(pin ? "text_label_pin" : "text_label");
}

function bindTextForm() {
  $("text-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("text-input");
    const text = input.value.trim();
    if (!text || state.busy) return;
    input.value = "";
    stopPlayback();
    state.busy = true;
    renderPtt();
    try {
      await sendText(text);
    } finally {
      state.busy = false;
      renderPtt();
      input.focus();
    }
  });
}

// ---- My data -----------------------------------------------------------------------------------------

async function refreshOverview(announceChanges) {
  const userId = state.userId;
  if (!config.demo) {
    state.overview = { unavailable: "no_demo" };
    renderOverview();
    return;
  }
  let overview;
  try {
    const response = await request(`/v1/console/speakers/${encodeURIComponent(userId)}/overview`, { cache: "no-store" });
    overview = await response.json();
  } catch (error) {
    state.overview = { unavailable: "mydata_unavailable" };
    renderOverview();
    return;
  }
  if (userId !== state.userId) return; // the speaker changed while this was loading
  const previous = state.overview;
  state.overview = overview;
  const changed = announceChanges && previous && previous.citizen ? changesBetween(previous, overview) : [];
  renderOverview(new Set(changed.map((c) => c.id)));
  if (changed.length) $("mydata-changes").textContent = changed.map((c) => c.message).join(" ");
}

function changesBetween(before, after) {
  const changes = [];
  const oldConsents = new Map((before.consents || []).map((c) => [c.id, c]));
  for (const consent of after.consents || []) {
    const old = oldConsents.get(consent.id);
    if (!old || old.active !== consent.active || (old.history || []).length !== (consent.history || []).length) {
      const params = { recipient: pick(consent.recipient_names), item: pick(consent.data_item_names) };
      changes.push({ id: consent.id, message: tr(consent.active ? "changed_consent_on" : "changed_consent_off", params) });
    }
  }
  const oldCerts = new Map((before.certificates || []).map((c) => [c.id, c]));
  for (const cert of after.certificates || []) {
    const old = oldCerts.get(cert.id);
    if (old && old.status !== cert.status) {
      const status = tr("s_" + cert.status);
      changes.push({ id: cert.id, message: tr("changed_certificate", { name: pick(cert.names), status, status_ro: particleRo(status) }) });
    }
  }
  const oldCopies = new Map(((before.wallet && before.wallet.copies) || []).map((c) => [c.id, c]));
  for (const copy of (after.wallet && after.wallet.copies) || []) {
    const old = oldCopies.get(copy.id);
    const status = tr("s_" + copy.status);
    if (!old) changes.push({ id: copy.id, message: tr("changed_copy_new", { name: pick(copy.names), name_iga: particleIGa(pick(copy.names)) }) });
    else if (old.status !== copy.status) {
      changes.push({ id: copy.id, message: tr("changed_copy", { name: pick(copy.names), status, status_ro: particleRo(status) }) });
    }
  }
  return changes;
}

// A name in the interface language; English agency names drop the article they carry for speech.
function pick(names) {
  const name = (names && (names[lang(state.locale)] || names.ko)) || "";
  return lang(state.locale) === "en" ? name.replace(/^the /, "") : name;
}

function renderOverview(changedIds = new Set()) {
  const overview = state.overview;
  const who = $("mydata-who");
  const body = $("mydata-body");
  if (!overview) {
    who.textContent = "";
    body.hidden = true;
    return;
  }
  if (overview.unavailable) {
    who.textContent = tr(overview.unavailable);
    body.hidden = true;
    return;
  }
  if (!overview.citizen) {
    who.textContent = tr("unlinked_note");
    body.hidden = true;
    return;
  }
  body.hidden = false;
  who.textContent = tr("citizen_line", { name: overview.citizen.name, id: overview.citizen.id });
  const locale = state.locale;

  $("certificates").replaceChildren(...(overview.certificates.length ? overview.certificates.map((cert) => {
    const dates = [];
    if (cert.applied_on && cert.status === "in_progress") dates.push(tr("applied_on", { d: formatDate(cert.applied_on, locale) }));
    if (cert.issued_on) dates.push(tr("issued_on", { d: formatDate(cert.issued_on, locale) }));
    if (cert.valid_until) dates.push(tr(cert.status === "expired" ? "expired_on" : "valid_until", { d: formatDate(cert.valid_until, locale) }));
    return el("li", { class: "card", "data-certificate-id": cert.id, "data-status": cert.status, "data-changed": String(changedIds.has(cert.id)) },
      el("span", { class: "card-title", text: pick(cert.names) }),
      el("span", { class: `badge status-${cert.status}`, text: tr("s_" + cert.status) }),
      el("span", { class: "card-detail", text: dates.join(" · ") }));
  }) : [el("li", { class: "empty", text: tr("none") })]));

  const wallet = overview.wallet;
  const walletBox = $("wallet");
  walletBox.replaceChildren(el("p", { text: wallet ? tr("wallet_line", { id: wallet.id }) : tr("no_wallet") }));
  if (wallet && wallet.copies && wallet.copies.length) {
    walletBox.append(el("ul", { class: "cards" }, ...wallet.copies.map((copy) => el("li", {
      class: "card", "data-copy-id": copy.id, "data-status": copy.status, "data-changed": String(changedIds.has(copy.id)),
    },
      el("span", { class: "card-title", text: pick(copy.names) || copy.doc_type }),
      el("span", { class: `badge status-${copy.status}`, text: tr("s_" + copy.status) }),
      el("span", { class: "card-detail", text: copy.issued_at ? tr("issued_on", { d: formatDate(copy.issued_at, locale) }) : "" })))));
  }

  $("consents").replaceChildren(...(overview.consents.length ? overview.consents.map((consent) => {
    const details = [consent.purpose === "public-service" ? tr("purpose_public_service") : consent.purpose];
    if (consent.active && consent.since) details.push(tr("consent_since", { d: formatDate(consent.since, locale) }));
    if (consent.active && consent.valid_until) details.push(tr("consent_until", { d: formatDate(consent.valid_until, locale) }));
    const card = el("li", {
      class: "card consent", "data-record-id": consent.id, "data-recipient": consent.recipient,
      "data-data-item": consent.data_item, "data-active": String(consent.active), "data-changed": String(changedIds.has(consent.id)),
    },
    el("span", { class: "card-title", text: `${pick(consent.recipient_names)} · ${pick(consent.data_item_names)}` }),
    el("span", { class: `badge consent-${consent.active ? "on" : "off"}`, text: tr(consent.active ? "consent_on" : "consent_off") }),
    el("span", { class: "card-detail", text: details.join(" · ") }));
    if (consent.history && consent.history.length) {
      const items = consent.history.map((event) => el("li", {},
        el("span", { class: "event", text: tr("ev_" + event.event) }), " ",
        el("time", { dateTime: event.at, text: formatDateTime(event.at, locale) }),
        event.channel ? ` · ${event.channel}` : ""));
      card.append(el("details", { class: "history" },
        el("summary", { text: `${tr("history")} (${consent.history.length})` }),
        el("ol", {}, ...items)));
    }
    return card;
  }) : [el("li", { class: "empty", text: tr("none") })]));

  // Each notice with its delivery state per push channel (what the citizen's app shows too).
  const notices = overview.notifications || [];
  $("notifications").replaceChildren(...(notices.length ? notices.map((notice) => {
    const title = [tr("n_" + notice.kind), pick(notice.names)].filter(Boolean).join(" · ");
    const pushes = notice.pushes.length
      ? notice.pushes.map((push) => el("span", { class: `push push-${push.state}`, "data-channel": push.channel, "data-state": push.state },
        `${tr("ch_" + push.channel)}: ${tr("p_" + push.state)}`))
      : [el("span", { class: "push", text: tr("no_pushes") })];
    return el("li", { class: "card notice", "data-notification-id": notice.id, "data-kind": notice.kind, "data-read": String(notice.read) },
      el("span", { class: "card-title", text: title }),
      el("span", { class: `badge notice-${notice.read ? "read" : "unread"}`, text: tr(notice.read ? "n_read" : "n_unread") }),
      el("span", { class: "card-detail" }, el("time", { dateTime: notice.created_at, text: formatDateTime(notice.created_at, locale) })),
      el("span", { class: "card-detail pushes" }, ...pushes.flatMap((node, i) => (i ? [" · ", node] : [node]))));
  }) : [el("li", { class: "empty", text: tr("none") })]));
}

// ---- start -------------------------------------------------------------------------------------------

function bindTokenForm() {
  const form = $("token-form");
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("device-token").value.trim();
    $("device-token").value = "";
    if (!value) return;
    enteredToken = value;
    state.userId = "this-device";
    renderSpeakerOptions();
    selectSpeaker("this-device");
  });
}

function init() {
  const first = speakers()[0];
  state.userId = first.user_id;
  $("speaker").addEventListener("change", (event) => selectSpeaker(event.target.value));
  $("language").addEventListener("change", (event) => applyLocale(event.target.value));
  $("new-session").addEventListener("click", () => startNewSession(true));
  if (!config.demo) bindTokenForm();
  $("hands-free").addEventListener("change", (event) => (event.target.checked ? startHandsFree() : stopHandsFree()));
  bindPushToTalk();
  bindTextForm();
  window.addEventListener("focus", () => refreshOverview(true));
  selectSpeaker(first.user_id);
  checkHealth();
  document.body.dataset.ready = "true";
}

init();

// Exposed for the browser tests, which check the page's own audio path on known signals.
window.minwonConsole = { state, sendAudio, streamingAvailable };
