// Package runlog is the record of full-pass runs shared by every instance
// of a consumer group: a single-partition Kafka topic (kafka.topics.runs)
// of commands (start, part, fail, approve, reject, applied) that each
// instance folds in log order into the same run states. The fold is
// deterministic — the guard's limits and the evaluation time travel in
// the start command — so every instance answers GET /api/runs the same,
// and decisions (a run is complete, held, published, superseded) need no
// coordinator. Effects on the outside world (feed files, fixes) belong to
// the full pass (processor/fullpass), which reads the fold.
package runlog
