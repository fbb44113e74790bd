// Package scaler implements KEDA's ExternalScaler service on top of a
// Backend.
//
// A backend says two things: how to parse its trigger metadata into a
// Trigger, and how a Probe reads the current value and watches for changes
// (or embeds NoChanges). Service turns that into the five RPCs, the way the
// protocol reference describes them:
//
//   - GetMetricSpec and StreamMetricSpec answer from memory. A target read
//     from the backend (Trigger.TargetProbe) is refreshed in the
//     background and pushed to StreamMetricSpec when it changes; a static
//     target is sent once, then its stream ends Unimplemented.
//   - GetMetrics and IsActive read through one coalescing cache, so that a
//     poll's two calls, and every ScaledObject asking the same question,
//     cost one backend call per TTL.
//   - StreamIsActive sends the current activity at once, then every change
//     (KEDA acts only on true), from one feed per distinct probe.
//   - A failed read is Unavailable (DeadlineExceeded when it timed out),
//     never a made-up 0, unless the trigger asks for ErrorInactive.
//   - What a trigger can make the service hold is bounded (Options
//     MaxQuestions, MaxMetadataBytes): idle entries make room least
//     recently used first, and a new question that finds every entry in
//     use is ResourceExhausted naming the limit and its variable — never a
//     reading, whatever the error policy.
//   - Backend calls take turns: at most MaxBackendCalls in flight, at most
//     MaxCallsPerNamespace of one namespace, the others waiting in their
//     namespace's line (MaxWaitingPerNamespace) while namespaces take
//     turns; and the questions in flight are shared fairly among
//     namespaces (package share), so that one namespace's burst never
//     refuses another's question.
//   - Watched push feeds (MaxFeeds) and background target readers
//     (MaxTargetReaders) are places shared fairly among namespaces
//     (package share). Without one the answer degrades and stays true: a
//     feed polls every PushInterval, a target is the trigger's static one
//     (with a warning) until a reader place frees.
//   - Each distinct trigger metadata is parsed once and kept (at most
//     MaxQuestions of them, of MaxQuestionBytes): a poll with a warm cache
//     parses nothing and calls no backend.
//   - Shutdown cancels every backend call still running and does not wait
//     for a backend that ignores the cancellation.
//   - Metadata keys the backend never asked about are checked: a near miss
//     of a known key is InvalidArgument ("did you mean"), KEDA's own keys
//     pass, others pass with a warning (log and WarningHeader).
//
// Values are float64. The deprecated int64 fields are filled too: a target
// is rounded up (so that an int-only client never scales out more than
// asked), a value is rounded half away from zero.
package scaler
